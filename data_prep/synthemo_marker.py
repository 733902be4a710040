"""The marker of a SynthEmo corpus folder, ``synthemo.json``: what generated the files beside it.

A generation writes the marker first (its options, ``complete: false``) and again when
every file exists (``complete: true`` and the totals). The next generation into the
same folder compares its *content* options with the marker's: the same content may
add or drop files (speaker and file counts change freely), other content is refused
with the differing keys, or cleared first when regenerating
(:mod:`data_prep.synthemo`).
"""

import contextlib
import glob
import json
import os

from data_prep.common import PreparationError
from data_prep.voices import VOICE_SPACE
from speechbrain_ext.files import TMP_PREFIX, atomic_write

__all__ = ["DATA_MARKER", "check_marker", "differing_keys", "read_marker", "remove_stale_temporaries",
           "with_later_keys", "write_marker"]

DATA_MARKER = "synthemo.json"


def _flat(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def differing_keys(old, new):
    """``key: old -> new`` for every (nested) key whose value differs, sorted.

    Example
    -------
    >>> differing_keys({"format": 1, "a": {"b": 1}}, {"format": 2, "a": {"b": 1}, "c": 3})
    ['c: (absent) -> 3', 'format: 1 -> 2']
    """
    old, new = _flat(old or {}), _flat(new or {})
    missing = "(absent)"
    return [f"{k}: {old.get(k, missing)} -> {new.get(k, missing)}" for k in sorted(set(old) | set(new))
            if old.get(k, missing) != new.get(k, missing)]


def read_marker(data_folder):
    """The marker of ``data_folder`` as a dict, or None when there is none (or it is unreadable).

    Example
    -------
    >>> import tempfile
    >>> read_marker(tempfile.mkdtemp()) is None
    True
    """
    try:
        with open(os.path.join(data_folder, DATA_MARKER)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def with_later_keys(content):
    """``content`` of a marker with the voice-space keys added since it was written, at their defaults.

    A key added to :data:`~data_prep.voices.VOICE_SPACE` defaults to the value that reproduces
    the corpora generated before it existed, so such a corpus is the one its marker describes.

    Example
    -------
    >>> with_later_keys({"voice_space": {"vtl_sd": 0.05}})["voice_space"]["expressiveness_mean"]
    1.0
    """
    if not isinstance(content, dict) or not isinstance(content.get("voice_space"), dict):
        return content
    defaults = json.loads(json.dumps(dict(VOICE_SPACE)))
    return {**content, "voice_space": {**defaults, **content["voice_space"]}}


def check_marker(data_folder, content, regenerate):
    """Whether ``data_folder`` must be cleared before generating ``content`` into it.

    False when it has no marker or one of the same content; True when its content differs
    and ``regenerate`` is set; otherwise a :class:`~data_prep.common.PreparationError`
    naming the differing keys and the ways out.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_marker(d, {"format": 2}, {})
    >>> check_marker(d, {"format": 2}, regenerate=False), check_marker(d, {"format": 3}, regenerate=True)
    (False, True)
    """
    info = read_marker(data_folder)
    if info is None or with_later_keys(info.get("content_options")) == content:
        return False
    if regenerate:
        return True
    differences = differing_keys(with_later_keys(info.get("content_options")), content)
    raise PreparationError(
        f"{data_folder} holds a SynthEmo corpus generated with other settings ({'; '.join(differences)}): "
        f"generate into another data_folder, delete it, or regenerate it (regenerate=True, "
        f"python -m data_prep.synthemo {data_folder} --regenerate ...)"
    )


def write_marker(data_folder, content, options, totals=None):
    """Write the marker: complete (with ``totals``) or not yet (``totals`` None)."""
    with atomic_write(os.path.join(data_folder, DATA_MARKER)) as f:
        json.dump({"content_options": content, "options": options, "complete": totals is not None,
                   "totals": totals}, f, indent=2, sort_keys=True)


def remove_stale_temporaries(data_folder):
    """Temporary files of an interrupted generation: the data lock is held, so nobody is writing them."""
    for path in glob.glob(os.path.join(glob.escape(data_folder), "**", TMP_PREFIX + "*.wav"), recursive=True):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
