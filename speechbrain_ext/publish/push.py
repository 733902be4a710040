"""Upload an exported model folder to the Hugging Face Hub (``create_repo`` + ``upload_folder``).

The token is ``huggingface_hub.get_token()`` (``HF_TOKEN`` or the stored login of
``hf auth login``); it is passed to ``HfApi`` and never printed or written. A failed
Hub call becomes a :class:`~speechbrain_ext.publish.layout.PublishError` whose
message says what to do (log in, go online, pass ``--overwrite``) and never carries a
token or a request header.
"""

import os
import re
import socket
import sys

from speechbrain_ext.publish.layout import CARD, COMMAND, HPARAMS, MARKER, PublishError

__all__ = ["push_model"]

_NETWORK_ERROR_NAMES = {
    "ConnectError", "ConnectTimeout", "NetworkError", "TransportError", "TimeoutException", "ReadTimeout",
    "ConnectionError", "OfflineModeIsEnabled", "ProxyError", "SSLError",
}
# Files a previous push may have left in a repo without making it "other content".
_HUB_OWN_FILES = {".gitattributes"}


def _is_network_error(err):
    if isinstance(err, ConnectionError | socket.timeout | socket.gaierror):
        return True
    return any(cls.__name__ in _NETWORK_ERROR_NAMES for cls in type(err).__mro__)


def _status(err):
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _hub_error(err, repo_id, action):
    """A :class:`PublishError` for a failed Hub call (no token or header in the message)."""
    if _is_network_error(err):
        return PublishError(
            f"cannot reach the Hugging Face Hub to {action} {repo_id} (no network? HF_HUB_OFFLINE set?): "
            f"{type(err).__name__}; nothing was uploaded"
        )
    status = _status(err)
    if status in (401, 403):
        return PublishError(
            f"the Hugging Face Hub refused to {action} {repo_id} (HTTP {status}): the token is invalid or has no "
            "write access to this namespace; log in again with `hf auth login` or set HF_TOKEN"
        )
    return PublishError(f"could not {action} {repo_id} on the Hugging Face Hub: {type(err).__name__}: {err}")


def _folder_files(folder):
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, folder).replace(os.sep, "/")] = os.path.getsize(path)
    return out


def _check_folder(out_dir, repo_id):
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id or ""):
        raise PublishError(f"--repo-id must look like user/name, got {repo_id!r}")
    if not os.path.isdir(out_dir):
        raise PublishError(f"model folder not found: {out_dir}")
    if not os.path.isfile(os.path.join(out_dir, HPARAMS)):
        raise PublishError(f"{out_dir} has no {HPARAMS}: not an exported model folder "
                           f"(run `{COMMAND} export` first)")


def _print_dry_run(out_dir, repo_id, files, revision, private, stream):
    total = sum(files.values())
    print(f"dry run: would upload {len(files)} files ({total / 1e6:.2f} MB) to "
          f"https://huggingface.co/{repo_id}" + (f" (revision {revision})" if revision else "")
          + (" as a private repo" if private else ""), file=stream)
    width = max(len(n) for n in files)
    for name, size in files.items():
        print(f"  {name.ljust(width)}  {size:>12,d} B", file=stream)
    card = os.path.join(out_dir, CARD)
    if os.path.isfile(card):
        print(f"\n----- {CARD} -----", file=stream)
        with open(card, encoding="utf-8") as f:
            print(f.read().rstrip(), file=stream)


def _api():
    import huggingface_hub
    from huggingface_hub import HfApi

    token = huggingface_hub.get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token: log in with `hf auth login` (or `huggingface-cli login`), or set HF_TOKEN; "
            "nothing was uploaded"
        )
    return HfApi(token=token)


def _remote_files(api, repo_id, revision, private):
    """``(files in the repo at revision, whether the repo was created)``; creates a missing repo or branch."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        try:
            return api.list_repo_files(repo_id, revision=revision), False
        except RevisionNotFoundError:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
            return api.list_repo_files(repo_id, revision=revision), False
        except RepositoryNotFoundError:
            api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            return [], True
    except PublishError:
        raise
    except Exception as err:
        raise _hub_error(err, repo_id, "look up") from err


def push_model(out_dir, repo_id, private=False, revision=None, dry_run=False, overwrite=False,
               commit_message=None, stream=None):
    """Upload an exported model folder to the Hugging Face Hub (``create_repo`` + ``upload_folder``).

    Arguments
    ---------
    out_dir : str
        A folder written by :func:`~speechbrain_ext.publish.folder.export_model`.
    repo_id : str
        ``user/name`` (or ``org/name``).
    private : bool
        Create the repo private (an existing repo keeps its visibility).
    revision : str or None
        Branch to push to (created from the default branch if missing).
    dry_run : bool
        Only list the files, their sizes and the card; no token, no network.
    overwrite : bool
        Push into a repo that holds other files, deleting those.
    commit_message : str or None
    stream : file or None
        Where the dry run writes its listing (default ``sys.stdout``).

    Returns
    -------
    dict
        ``repo_id``, ``files`` (path → bytes), ``dry_run``, and after an upload
        ``url``, ``created`` (bool) and ``deleted`` (remote files removed).

    Example
    -------
    >>> import tempfile
    >>> push_model(tempfile.mkdtemp(), "me/model", dry_run=True)
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: ... has no hyperparams.yaml: not an exported model folder (run `...
    """
    _check_folder(out_dir, repo_id)
    files = _folder_files(out_dir)
    result = {"repo_id": repo_id, "files": files, "dry_run": dry_run}
    if dry_run:
        _print_dry_run(out_dir, repo_id, files, revision, private, stream or sys.stdout)
        return result
    api = _api()
    remote, created = _remote_files(api, repo_id, revision, private)
    others = sorted(f for f in remote if f not in files and f not in _HUB_OWN_FILES)
    if others and not overwrite:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise PublishError(
            f"{repo_id} already holds other content ({shown}); pass --overwrite to replace the repo's files "
            "with this model (nothing was uploaded)"
        )
    try:
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=out_dir,
            revision=revision,
            commit_message=commit_message or f"Upload speaker-verification model ({MARKER})",
            delete_patterns=others or None,
            ignore_patterns=[".*", "**/.*"],
        )
    except Exception as err:
        raise _hub_error(err, repo_id, "upload to") from err
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}"
    result.update(url=str(url), created=created, deleted=others)
    return result
