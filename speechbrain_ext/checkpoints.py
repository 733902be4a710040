"""A SpeechBrain ``Checkpointer`` whose checkpoints are never half-written.

SpeechBrain's :class:`~speechbrain.utils.checkpoints.Checkpointer` creates
``CKPT+<time>/``, writes ``CKPT.yaml`` FIRST and then one paramfile per
recoverable. A process killed (or a disk that fills up) in between leaves a folder
that looks complete to :meth:`list_checkpoints` — it has ``CKPT.yaml`` and is the
most recent — so the next run tries to resume from it and dies on a truncated or
missing paramfile (``PytorchStreamReader failed reading zip archive``).

:class:`SafeCheckpointer` (a drop-in replacement, used from the YAML as
``checkpointer: !new:speechbrain_ext.checkpoints.SafeCheckpointer``) changes three
things:

- **atomic saves**: a checkpoint is written into a hidden ``.tmp-CKPT+<time>/``,
  every file is fsynced together with a ``CKPT.files.json`` record (size and
  SHA-256 of each paramfile), ``CKPT.yaml`` is written last, and the folder is
  renamed to ``CKPT+<time>`` in one step. A failed save (disk full, file size
  limit) removes the temporary folder and raises :class:`CheckpointError`; as
  ``save_and_keep_only`` deletes older checkpoints only after a successful save,
  nothing older is lost. Temporary folders left by a killed save are removed at
  the next start.
- **verified listing**: a checkpoint whose files do not match its record (or, for
  folders written by SpeechBrain's own Checkpointer, with an empty or truncated
  paramfile or a missing one) is skipped with a warning and renamed to
  ``damaged-CKPT+<time>`` (kept for inspection, invisible to recovery and export),
  so recovery falls back to the newest intact checkpoint.
- **safe loading**: modules, optimisers and schedulers are restored with
  ``torch.load(..., weights_only=True)`` explicitly.
"""

import contextlib
import errno
import hashlib
import json
import logging
import os
import pathlib
import resource
import shutil
import zipfile

import torch
from speechbrain.utils.checkpoints import (
    DEFAULT_SAVE_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    get_default_hook,
    hook_on_loading_state_dict_checkpoint,
)
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast, if_main_process

from speechbrain_ext import compat
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import TMP_PREFIX

logger = logging.getLogger(__name__)

DAMAGED_PREFIX = "damaged-"
RECORD_NAME = "CKPT.files.json"
RECORD_FORMAT = 1
_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class CheckpointError(SpeechBrainExtError, RuntimeError):
    """A checkpoint could not be written; the message names the folder, the file and the cause.

    Example
    -------
    >>> str(CheckpointError("could not write checkpoint CKPT+x"))
    'could not write checkpoint CKPT+x'
    """


def torch_recovery_weights_only(obj, path, end_of_epoch):
    """Load a module / optimiser / scheduler ``state_dict`` with ``torch.load(weights_only=True)``.

    The same as SpeechBrain's ``torch_recovery`` (key renames applied, strict), but
    never unpickles arbitrary objects whatever torch's default is.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.ckpt")
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> model = torch.nn.Linear(2, 2)
    >>> torch_recovery_weights_only(model, path, end_of_epoch=True)
    >>> torch.equal(model.weight, torch.load(path, weights_only=True)["weight"])
    True
    """
    del end_of_epoch
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = hook_on_loading_state_dict_checkpoint(state)
    try:
        obj.load_state_dict(state, strict=True)
    except TypeError:  # optimisers and schedulers take no ``strict``
        obj.load_state_dict(state)


def file_digest(path, chunk=1 << 20):
    """SHA-256 (hex) of a file, read in chunks.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a"); _ = open(p, "wb").write(b"abc")
    >>> file_digest(p)[:12]
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path):
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_WRITE_FAILURES = ("write failed", "No space left", "File too large", "unexpected pos", "inline_container")


def _state_key(folder):
    """``(folder, ((name, size, mtime), ...))``: changes whenever a file of ``folder`` does."""
    folder = pathlib.Path(folder)
    files = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()))
    return str(folder), files


def _is_disk_error(err):
    """Whether ``err`` (or what caused it) looks like a failed write: full disk, file size limit.

    torch's zip writer reports a short write as ``[enforce fail at inline_container.cc] unexpected pos``.

    Example
    -------
    >>> _is_disk_error(OSError(errno.ENOSPC, "No space left on device")), _is_disk_error(ValueError("x"))
    (True, False)
    """
    while err is not None:
        if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
            return True
        if any(text in str(err) for text in _WRITE_FAILURES):
            return True
        err = err.__cause__ or err.__context__
    return False


def _space_report(folder):
    """Free space of ``folder``'s file system and this process's file size limit, when finite."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append(f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free there")
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft != resource.RLIM_INFINITY:
        parts.append(f"file size limit (ulimit -f) {soft} bytes")
    return ", ".join(parts)


class SafeCheckpointer(compat.Checkpointer):
    """SpeechBrain's ``Checkpointer`` with atomic saves, verified listing and ``weights_only`` loads.

    Takes the same arguments as :class:`speechbrain.utils.checkpoints.Checkpointer`.
    The SpeechBrain internals it builds on are reached through :class:`speechbrain_ext.compat.Checkpointer`.

    Example
    -------
    >>> import tempfile
    >>> model = torch.nn.Linear(2, 2)
    >>> ckpt = SafeCheckpointer(tempfile.mkdtemp(), {"model": model})
    >>> saved = ckpt.save_checkpoint(meta={"EER": 3.0})
    >>> sorted(os.listdir(saved.path))
    ['CKPT.files.json', 'CKPT.yaml', 'model.ckpt']
    >>> _ = open(saved.paramfiles["model"], "r+b").truncate(10)   # damaged after the fact
    >>> ckpt.list_checkpoints()                                     # skipped (with a warning)
    []
    >>> sorted(n.split("+")[0] for n in os.listdir(ckpt.checkpoints_dir))
    ['damaged-CKPT']
    """

    torch_load_hook = staticmethod(torch_recovery_weights_only)

    def __init__(self, checkpoints_dir, recoverables=None, custom_load_hooks=None, custom_save_hooks=None,
                 allow_partial_load=False):
        super().__init__(checkpoints_dir, recoverables, custom_load_hooks, custom_save_hooks, allow_partial_load)
        self._problems = {}  # _state_key(folder) -> problem or None
        if if_main_process():
            self._remove_interrupted_saves()

    # ------------------------------------------------------------------ saving
    def _remove_interrupted_saves(self):
        for path in sorted(self.checkpoints_dir.glob(TMP_PREFIX + "*")):
            logger.warning("removing %s: an incomplete checkpoint left by an interrupted save", path)
            shutil.rmtree(path, ignore_errors=True)

    def save_checkpoint(self, meta=None, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Save a checkpoint atomically (see the module docstring); same arguments as SpeechBrain's.

        Raises
        ------
        CheckpointError
            When a file cannot be written (disk full, size limit...). The partial
            checkpoint is removed and older checkpoints are untouched.
        """
        meta = dict(meta or {})
        final = tmp = None
        if if_main_process():
            final = self.checkpoint_dirpath(name)
            tmp = final.parent / (TMP_PREFIX + final.name)
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
        final, tmp = ddp_broadcast((final, tmp), src=0)
        current = None
        try:
            paramfiles = {}
            for rec_name, obj in self.recoverables.items():
                current = f"{rec_name}{PARAMFILE_EXT}"
                path = tmp / current
                hook = self.custom_save_hooks.get(rec_name) or get_default_hook(obj, DEFAULT_SAVE_HOOKS)
                if hook is None:
                    raise RuntimeError(f"don't know how to save {type(obj)} ({rec_name}): register a save hook")
                hook(obj, path)
                paramfiles[rec_name] = final / current
            ddp_barrier()
            saved_meta = None
            if if_main_process():
                current = RECORD_NAME
                self._write_record(tmp)
                current = METAFNAME
                saved_meta = self.write_meta_file(tmp / METAFNAME, meta, end_of_epoch)
                for path in tmp.iterdir():
                    _fsync_file(path)
                current = None
                os.rename(tmp, final)
                _fsync_dir(self.checkpoints_dir)
                # just written and verified by construction: no need to hash it again when listed
                self._problems[_state_key(final)] = None
        except Exception as err:
            if if_main_process():
                shutil.rmtree(tmp, ignore_errors=True)
            raise CheckpointError(self._save_error(final, current, err)) from err
        if if_main_process():
            kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
            logger.log(verbosity, f"Saved an {kind} checkpoint in {final}")
            return Checkpoint(final, saved_meta, paramfiles)
        return None

    def _write_record(self, folder):
        files = {}
        for path in sorted(folder.iterdir()):
            if path.name != RECORD_NAME and path.is_file():
                _fsync_file(path)
                files[path.name] = {"bytes": path.stat().st_size, "sha256": file_digest(path)}
        with open(folder / RECORD_NAME, "w", encoding="utf-8") as f:
            json.dump({"format": RECORD_FORMAT, "files": files}, f, indent=1, sort_keys=True)

    def _save_error(self, final, current, err):
        what = f"{current} of " if current else ""
        message = (
            f"could not write {what}checkpoint {final.name} in {self.checkpoints_dir}: {type(err).__name__}: {err}"
        )
        if _is_disk_error(err):
            message += f" (disk full or file size limit? {_space_report(self.checkpoints_dir)})"
        kept = sorted(c.path.name for c in self.list_checkpoints())
        message += (
            "; the partial checkpoint was removed and no older checkpoint was deleted "
            f"(kept: {', '.join(kept) if kept else 'none'})"
        )
        return message

    # ------------------------------------------------------------------ listing
    def list_checkpoints(self):
        """The intact checkpoints; damaged ones are skipped with a warning and renamed ``damaged-CKPT+...``."""
        good = []
        for ckpt_dir in self.checkpoint_dirs():
            try:
                ckpt = self.read_checkpoint(ckpt_dir)
                problem = self._problem(ckpt)
            except FileNotFoundError:  # renamed or deleted by another process meanwhile
                continue
            except Exception as err:  # unreadable CKPT.yaml
                problem = f"unreadable {METAFNAME} ({type(err).__name__}: {err})"
            if problem:
                self._set_aside(ckpt_dir, problem)
                continue
            good.append(ckpt)
        return good

    def _set_aside(self, ckpt_dir, problem):
        if not if_main_process():
            return
        target = ckpt_dir.parent / (DAMAGED_PREFIX + ckpt_dir.name)
        try:
            os.rename(ckpt_dir, target)
        except OSError:
            target = ckpt_dir
        logger.warning(
            "skipping damaged checkpoint %s: %s; moved to %s (recovery uses the newest intact checkpoint)",
            ckpt_dir, problem, target.name,
        )

    def _problem(self, ckpt):
        """Why ``ckpt`` cannot be loaded, or ``None``; cached until a file of the folder changes."""
        key = _state_key(ckpt.path)
        if key not in self._problems:
            self._problems[key] = self._find_problem(ckpt)
        return self._problems[key]

    def _find_problem(self, ckpt):
        if not isinstance(ckpt.meta, dict) or "end-of-epoch" not in ckpt.meta:
            return f"{METAFNAME} is incomplete (no 'end-of-epoch' entry)"
        record_path = ckpt.path / RECORD_NAME
        if record_path.exists():
            try:
                with open(record_path, encoding="utf-8") as f:
                    files = json.load(f)["files"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                return f"unreadable {RECORD_NAME} ({type(err).__name__}: {err})"
            for fname, info in files.items():
                path = ckpt.path / fname
                if not path.is_file():
                    return f"{fname} is missing"
                if path.stat().st_size != info["bytes"]:
                    return f"{fname} has {path.stat().st_size} bytes, {info['bytes']} were written"
                if file_digest(path) != info["sha256"]:
                    return f"{fname} does not match its SHA-256 written at save time"
            return None
        return self._unrecorded_problem(ckpt)

    def _unrecorded_problem(self, ckpt):
        """Signs of an interrupted save in a folder without a record (written by SpeechBrain's own Checkpointer)."""
        for path in sorted(ckpt.paramfiles.values()):
            size = path.stat().st_size
            if size == 0:
                return f"{path.name} is empty (interrupted save?)"
            with open(path, "rb") as f:
                is_zip_member = f.read(4) == b"PK\x03\x04"
            if is_zip_member:  # torch.save's format: the central directory is written last
                try:
                    with zipfile.ZipFile(path) as archive:
                        bad = archive.testzip()
                except (zipfile.BadZipFile, OSError) as err:
                    return f"{path.name} is truncated or corrupt ({err})"
                if bad is not None:
                    return f"{path.name} is corrupt (bad CRC in {bad})"
        if not self.allow_partial_load:
            missing = [
                n for n in self.recoverables
                if n not in ckpt.paramfiles and not self.optional_recoverables.get(n) and "dataloader" not in n
            ]
            if missing:
                return f"no paramfile for {', '.join(missing)} (interrupted save?)"
        return None
