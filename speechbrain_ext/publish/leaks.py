"""Refuse to publish a path or user name of the training machine, in any file of the export.

Every file of the folder is searched before it is moved into place, binary ones
included (checkpoints, ONNX, TorchScript: a TorchScript archive's debug records, for
one, hold the absolute paths of the Python sources it was traced from). The needles
(:func:`identity_strings`) are the experiment's folder and its parent, the home folder,
the installed package's folder, the Python environment and the login names; a hit stops
the export with nothing written.

Paths are searched in every byte (and in every member of a zip archive, which may be
stored compressed). User names, as words, in every byte except the tensor payloads of
binary files (the ``data/<n>`` records of a PyTorch archive, the initializers of an
ONNX graph): numbers, not text, in which a three-letter name occurs by chance every few
tens of megabytes.
"""

import contextlib
import getpass
import io
import os
import re
import sys
import zipfile

from speechbrain_ext.publish.layout import PublishError

__all__ = ["check_folder", "check_no_leaks", "identity_strings", "searchable_parts"]

# A PyTorch zip archive (torch.save, torch.jit.save) keeps each tensor's bytes in <root>/data/<n>
# (constants/<n> and traced_inputs/<n> in TorchScript); everything else is pickles, code and text.
_TENSOR_RECORD = re.compile(r"^[^/]+/(?:data|constants|traced_inputs)/\d+$")
_WORD_EDGE = rb"[A-Za-z0-9_-]"


def _paths_of_this_machine(experiment_dir):
    paths = []
    for path in {os.path.abspath(experiment_dir), os.path.realpath(experiment_dir)}:
        paths += [path, os.path.dirname(path)]
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths += [os.path.expanduser("~"), package_root, sys.prefix, os.path.realpath(sys.prefix)]
    # A very short path ("/e", "/usr") would match ordinary text.
    return sorted({p for p in paths if p not in ("/", "~", "") and len(p) > 4})


def identity_strings(experiment_dir):
    """Paths and names of this machine an export must not contain: ``[(kind, text)]``.

    Example
    -------
    >>> ("path", "/srv/runs/exp1") in identity_strings("/srv/runs/exp1")
    True
    """
    items = [("path", p) for p in _paths_of_this_machine(experiment_dir)]
    home = os.path.expanduser("~")
    names = {os.environ.get(v, "") for v in ("USER", "LOGNAME", "USERNAME")}
    with contextlib.suppress(Exception):
        names.add(getpass.getuser())
    with contextlib.suppress(OSError):
        names.add(os.getlogin())
    names.add(os.path.basename(home))
    items += [("user name", n) for n in sorted(names) if n and len(n) >= 3]
    return items


def _onnx_without_tensors(data):
    """The ONNX model's bytes with the initializers' and constants' payloads emptied (None: not ONNX)."""
    try:
        import onnx

        model = onnx.load_model_from_string(data)
    except Exception:  # not installed, or not an ONNX model: searched whole
        return None
    tensors = list(model.graph.initializer)
    tensors += [a.t for node in model.graph.node for a in node.attribute if a.HasField("t")]
    for tensor in tensors:
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            tensor.ClearField(field)
    return model.SerializeToString()


def _members(data):
    """``[(member name, bytes)]`` of a zip archive, decompressed; [] for another file."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(m.filename, archive.read(m)) for m in archive.infolist()]


def searchable_parts(name, data, kind="user name"):
    """``[(where, bytes)]`` of a file in which a ``kind`` of :func:`identity_strings` is looked for.

    A path is looked for in the file's bytes and, for a zip archive (whose members may
    be compressed), in every member; a user name in a zip archive's member names and its
    members other than tensor records, in an ONNX graph without its tensor payloads, and
    in the whole of any other file.

    Example
    -------
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as z:
    ...     z.writestr("m/data/0", b"\\x00abc\\x00"); z.writestr("m/code/x.py", b"def f(): pass")
    >>> [where for where, _ in searchable_parts("m.pt", buffer.getvalue())]
    ['m.pt (member names)', 'm.pt (member m/code/x.py)']
    >>> [where for where, _ in searchable_parts("m.pt", buffer.getvalue(), kind="path")]
    ['m.pt', 'm.pt (member m/data/0)', 'm.pt (member m/code/x.py)']
    """
    members = _members(data)
    if kind == "path":
        return [(name, data)] + [(f"{name} (member {member})", part) for member, part in members]
    if members:
        names = "\n".join(member for member, _ in members).encode()
        return [(f"{name} (member names)", names)] + [
            (f"{name} (member {member})", part) for member, part in members if not _TENSOR_RECORD.match(member)]
    if name.endswith(".onnx"):
        stripped = _onnx_without_tensors(data)
        if stripped is not None:
            return [(f"{name} (graph without tensor payloads)", stripped)]
    return [(name, data)]


def check_no_leaks(contents, experiment_dir):
    """Raise if any of ``contents`` (``{file name: str or bytes}``) holds an :func:`identity_strings` entry.

    Example
    -------
    >>> check_no_leaks({"README.md": "trained in /srv/runs/exp1"}, "/srv/runs/exp1")
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: README.md would publish a path of this machine ...
    >>> check_no_leaks({"model.bin": b"\\x00\\x01/srv/runs/exp1/a.py\\x00"}, "/srv/runs/exp1")
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: model.bin would publish a path of this machine ...
    """
    needles = identity_strings(experiment_dir)
    for name, data in contents.items():
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        parts = {}
        for kind, needle in needles:
            if kind not in parts:
                parts[kind] = searchable_parts(name, data, kind)
            raw = re.escape(needle.encode("utf-8"))
            pattern = re.compile(raw if kind == "path" else rb"(?<!" + _WORD_EDGE + rb")" + raw + rb"(?!"
                                 + _WORD_EDGE + rb")")
            hits = [where for where, part in parts[kind] if pattern.search(part)]
            if hits:
                raise PublishError(f"{hits[0]} would publish a {kind} of this machine ({needle!r}); "
                                   "nothing was written")


def check_folder(folder, experiment_dir):
    """:func:`check_no_leaks` over every file of ``folder`` (binary ones included).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "export.json"), "w").write('{"from": "/srv/runs/exp1"}')
    >>> check_folder(d, "/srv/runs/exp1")
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: export.json would publish a path of this machine ...
    """
    for dirpath, _, filenames in os.walk(folder):
        for filename in sorted(filenames):  # one file in memory at a time: checkpoints can be large
            path = os.path.join(dirpath, filename)
            with open(path, "rb") as f:
                check_no_leaks({os.path.relpath(path, folder).replace(os.sep, "/"): f.read()}, experiment_dir)
