"""The exported model folder: its file names, its error class and the small readers of it.

Every other module of :mod:`speechbrain_ext.publish` names the files of an export
through the constants here, so the layout is written down once.
"""

import json
import os

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write_json

__all__ = [
    "CALIBRATION",
    "CARD",
    "DEFAULT_PRIOR",
    "EXPORT_INFO",
    "HPARAMS",
    "MARKER",
    "ONNX_FILE",
    "PARITY_TOLERANCE",
    "PublishError",
    "RELOAD_TOLERANCE",
    "TORCHSCRIPT_FILE",
    "VERIFICATION",
    "is_export",
    "model_file",
    "read_threshold",
    "write_json",
]

#: Written into ``export.json`` (and the YAML's header): a folder holding it is a previous export
#: that may be replaced. The name of the module that wrote the first exports, kept so they stay replaceable.
MARKER = "speechbrain_ext.hub"
#: The command line of the exporter, as the messages and the card show it.
COMMAND = "python -m speechbrain_ext.publish"
EXPORT_INFO = "export.json"
VERIFICATION = "verification.json"
#: The run's score calibration (``speechbrain_ext.calibration.Calibration.to_dict()``), when it has one.
CALIBRATION = "calibration.json"
#: Prior of a same-speaker trial at which ``verify`` decides on a calibrated LLR unless ``--prior`` is given:
#: the operating point of the minDCF and actual DCF in the model card (NIST SRE's p_target = 0.01).
DEFAULT_PRIOR = 0.01
CARD = "README.md"
HPARAMS = "hyperparams.yaml"
ONNX_FILE = "embedding.onnx"
TORCHSCRIPT_FILE = "embedding.torchscript.pt"
#: Largest |difference| allowed between an exported ONNX / TorchScript embedding and PyTorch's.
PARITY_TOLERANCE = 1e-4
#: Largest |difference| allowed between the reloaded export and the checkpoint's modules.
RELOAD_TOLERANCE = 1e-5


class PublishError(SpeechBrainExtError, RuntimeError):
    """An export, push or load cannot proceed; the message names the file, key or folder.

    Example
    -------
    >>> str(PublishError("no checkpoint in exp/"))
    'no checkpoint in exp/'
    """


def is_export(folder):
    """Whether ``folder`` holds an export of this package (its ``export.json`` marker).

    Example
    -------
    >>> import tempfile
    >>> is_export(tempfile.mkdtemp())
    False
    """
    path = os.path.join(folder, EXPORT_INFO)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("exported_by") == MARKER
    except (OSError, ValueError, AttributeError):
        return False


def write_json(path, payload):
    """``payload`` as indented JSON (no NaN: the files are read by other tools).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.json")
    >>> write_json(p, {"threshold": 0.5}); open(p).read()
    '{\\n  "threshold": 0.5\\n}\\n'
    """
    atomic_write_json(path, payload, allow_nan=False)


#: What a Hub download raises for a file the repo does not have (huggingface_hub's classes; SpeechBrain's
#: ``fetch`` turns an HTTP 404 into a ValueError with this message).
_MISSING_ON_HUB = ("EntryNotFoundError", "RemoteEntryNotFoundError")
_MISSING_MESSAGE = "File not found on HF hub"


def model_file(source, name):
    """The local path of file ``name`` of a model folder or Hub repo, or None when it has none.

    A Hub download that fails for another reason than the file's absence (no network, a
    file not cached in offline mode) is an error: a model's optional files
    (``calibration.json``) change what ``verify`` decides, so their absence is never guessed.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "verification.json"), "w").write("{}")
    >>> model_file(d, "verification.json") == os.path.join(d, "verification.json"), model_file(d, "x.json")
    (True, None)
    """
    if os.path.isdir(source):
        path = os.path.join(source, name)
        return path if os.path.isfile(path) else None
    from speechbrain.utils.fetching import fetch

    try:
        return str(fetch(name, source=source, savedir=None))
    except Exception as err:  # fetch raises many types
        # By exact class: huggingface_hub's LocalEntryNotFoundError (offline, not cached) subclasses them.
        if type(err).__name__ in _MISSING_ON_HUB or _MISSING_MESSAGE in str(err):
            return None
        raise PublishError(f"cannot fetch {name} of {source} from the Hugging Face Hub (no network? not cached "
                           f"with HF_HUB_OFFLINE set?): {type(err).__name__}: {err}") from err


def read_threshold(source):
    """The decision threshold of a model folder or Hub repo (``verification.json``), or None.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "verification.json"), "w").write('{"threshold": 0.5}')
    >>> read_threshold(d)
    0.5
    >>> read_threshold(tempfile.mkdtemp()) is None
    True
    """
    path = model_file(source, VERIFICATION)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get("threshold")
    except (OSError, ValueError, AttributeError) as err:
        raise PublishError(f"{path}: not a readable verification.json: {err}") from err
    return None if value is None else float(value)
