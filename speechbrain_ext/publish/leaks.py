"""Refuse to publish a path or user name of the training machine.

The text files of an export (inference YAML, card, JSON files) are searched for the
experiment's folder and its parent, the home folder and the login names before the
folder is moved into place; a hit stops the export with nothing written.
"""

import contextlib
import getpass
import os
import re

from speechbrain_ext.publish.layout import PublishError

__all__ = ["check_no_leaks", "identity_strings"]


def identity_strings(experiment_dir):
    """Paths and names of this machine an export must not contain: ``[(kind, text)]``.

    Example
    -------
    >>> ("path", "/srv/runs/exp1") in identity_strings("/srv/runs/exp1")
    True
    """
    items = []
    for path in {os.path.abspath(experiment_dir), os.path.realpath(experiment_dir)}:
        if len(path) > 4:  # a very short path ("/e") would match ordinary text
            items.append(("path", path))
        parent = os.path.dirname(path)
        if parent not in ("/", "") and len(parent) > 4:
            items.append(("path", parent))
    home = os.path.expanduser("~")
    if home not in ("/", "~") and len(home) > 4:
        items.append(("path", home))
    names = {os.environ.get(v, "") for v in ("USER", "LOGNAME", "USERNAME")}
    with contextlib.suppress(Exception):
        names.add(getpass.getuser())
    with contextlib.suppress(OSError):
        names.add(os.getlogin())
    names.add(os.path.basename(home))
    items += [("user name", n) for n in sorted(names) if n and len(n) >= 3]
    return items


def check_no_leaks(texts, experiment_dir):
    """Raise if any of ``texts`` (``{file name: text}``) holds an :func:`identity_strings` entry.

    Example
    -------
    >>> check_no_leaks({"README.md": "trained in /srv/runs/exp1"}, "/srv/runs/exp1")
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: README.md would publish a path of this machine ...
    """
    for kind, needle in identity_strings(experiment_dir):
        word = r"(?<![A-Za-z0-9_-])" + re.escape(needle) + r"(?![A-Za-z0-9_-])"
        pattern = re.escape(needle) if kind == "path" else word
        for name, text in texts.items():
            if re.search(pattern, text):
                raise PublishError(f"{name} would publish a {kind} of this machine ({needle!r}); nothing was written")
