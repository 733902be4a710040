"""Atomic file writes: a reader never sees a half-written file, a failure leaves the old one.

Every writer of a result, manifest, cache, audio file or report in the project goes
through :func:`atomic_path` (for libraries that write by path: soundfile, torch,
matplotlib) or :func:`atomic_write` (an open file object). The temporary file sits
next to the destination (same file system, so the final ``os.replace`` is atomic)
under a hidden ``.tmp-`` name that never matches a glob of real outputs.
"""

import contextlib
import json
import os
import threading

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path, fsync=True):
    """Yield a temporary path next to ``path``; rename it over ``path`` when the block succeeds.

    On any exception (``KeyboardInterrupt`` included) the temporary file is removed
    and an existing ``path`` is left untouched. The parent folder is created.

    Arguments
    ---------
    path : str
        Final destination.
    fsync : bool
        Flush the file to disk before the rename (a crash then never leaves an empty file).

    Example
    -------
    >>> import numpy as np, soundfile as sf, tempfile
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "sub", "a.wav")
    >>> with atomic_path(p) as tmp:
    ...     sf.write(tmp, np.zeros(160, dtype="float32"), 16000, format="WAV")
    >>> os.listdir(os.path.dirname(p)), sf.info(p).frames
    (['a.wav'], 160)
    >>> with contextlib.suppress(ValueError), atomic_path(p) as tmp:
    ...     _ = open(tmp, "w").write("half")
    ...     raise ValueError("interrupted")
    >>> os.listdir(os.path.dirname(p)), sf.info(p).frames
    (['a.wav'], 160)
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{os.path.basename(path)}")
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="w", **open_kwargs):
    """Open a temporary file next to ``path`` and rename it over ``path`` on success.

    Text mode defaults to UTF-8 (ESD and Dusha transcripts are not ASCII).

    Arguments
    ---------
    path : str
        Final destination.
    mode : str
        ``"w"`` or ``"wb"``.
    **open_kwargs
        Passed to :func:`open` (e.g. ``newline=""``).

    Example
    -------
    >>> import tempfile; d = tempfile.mkdtemp()
    >>> with atomic_write(os.path.join(d, "a.txt")) as f:
    ...     _ = f.write("hello")
    >>> open(os.path.join(d, "a.txt")).read()
    'hello'
    """
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path, fsync=False) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically.

    Example
    -------
    >>> import tempfile; p = os.path.join(tempfile.mkdtemp(), "b.bin")
    >>> atomic_write_bytes(p, b"xy"); open(p, "rb").read()
    b'xy'
    """
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_json(path, payload, **json_kwargs):
    """Write ``payload`` as JSON (indent 2, newline at the end unless told otherwise) atomically.

    Example
    -------
    >>> import tempfile; p = os.path.join(tempfile.mkdtemp(), "m.json"); atomic_write_json(p, {"a": 1})
    >>> json.load(open(p))
    {'a': 1}
    """
    json_kwargs.setdefault("indent", 2)
    with atomic_write(path) as f:
        json.dump(payload, f, **json_kwargs)
        f.write("\n")


def tail(path, lines=15):
    """The last ``lines`` lines of a text file ('' when it cannot be read).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.log"); _ = open(p, "w").write("a\\nb\\nc\\n")
    >>> tail(p, 2)
    'b\\nc'
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "\n".join(f.read().rstrip("\n").splitlines()[-lines:])
    except OSError:
        return ""
