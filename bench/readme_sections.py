"""The one writer of bench/README.md: each bench script owns one ``## `` section.

``write_section("## Title", text)`` replaces that section (up to the next ``## `` header)
or appends it, leaving every other section as it is; the file is replaced atomically.

Example
-------
>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "README.md")
>>> write_section("## A", "one", p); write_section("## B", "## B\\n\\ntwo", p); write_section("## A", "three", p)
>>> print(open(p).read())
# Benchmarks
<BLANKLINE>
Each script in `bench/` owns one `## ` section below and rewrites only that section when run with `--write`.
<BLANKLINE>
## A
<BLANKLINE>
three
<BLANKLINE>
## B
<BLANKLINE>
two
<BLANKLINE>
"""

import os

from speechbrain_ext.files import atomic_write

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
INTRO = (
    "# Benchmarks\n\nEach script in `bench/` owns one `## ` section below and rewrites only that "
    "section when run with `--write`.\n"
)


def replace_section(document, header, body):
    """Return ``document`` with the section ``header`` set to ``body`` (added at the end if absent)."""
    lines = body.strip("\n").splitlines()
    if lines and lines[0].strip() == header:  # callers may pass the section with its header
        lines = lines[1:]
    block = header + "\n\n" + "\n".join(lines).strip("\n") + "\n"
    doc = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(doc) if line.rstrip() == header), None)
    if start is None:
        return document.rstrip("\n") + "\n\n" + block
    end = next((i for i in range(start + 1, len(doc)) if doc[i].startswith("## ")), len(doc))
    tail = "".join(doc[end:])
    return "".join(doc[:start]) + block + ("\n" + tail if tail else "")


def write_section(header, body, path=README):
    """Write ``body`` as the section ``header`` of ``path`` (created with an intro if missing)."""
    document = open(path, encoding="utf-8").read() if os.path.exists(path) else INTRO
    with atomic_write(path, encoding="utf-8") as f:
        f.write(replace_section(document, header, body))


def show_and_write(header, body, write, path=README):
    """Print a bench script's section; with ``write``, also set it in ``path`` (:func:`write_section`)."""
    print(body)
    if write:
        write_section(header, body, path)
        print(f"\nwritten to {path}")
