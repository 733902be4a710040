"""Deprecated name of :mod:`data_prep.synthemo` (the SynthEmo generator), kept so that old recipes and commands work.

``data_prep.synthetic.prepare_synthemo`` and ``python -m data_prep.synthetic`` still
work and warn; use ``data_prep.synthemo`` (``python -m data_prep.synthemo``).
The generator is split into :mod:`data_prep.espeak` (the engine),
:mod:`data_prep.voices` (the voice design), :mod:`data_prep.dsp` (signal
processing), :mod:`data_prep.synthemo_marker` (what generated a corpus folder) and
:mod:`data_prep.synthemo` (corpus layout, manifests, command line).
"""

import sys
import warnings

from data_prep import dsp, sentences, synthemo, synthemo_marker, voices

_MOVED = "data_prep.synthetic is deprecated: use data_prep.synthemo"
# Where each name is defined first: synthemo re-imports some of the others' names.
_HOMES = (sentences, voices, dsp, synthemo_marker, synthemo)


def __getattr__(name):
    """Names of :mod:`data_prep.synthemo` (or of the module a name moved to), with a DeprecationWarning.

    Example
    -------
    >>> import data_prep.synthetic as old
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     old.prepare_synthemo is synthemo.prepare_synthemo, old.SENTENCES is sentences.SENTENCES
    (True, True)
    >>> [str(w.message) for w in caught][1]
    'data_prep.synthetic is deprecated: use data_prep.synthemo (SENTENCES is data_prep.sentences.SENTENCES)'
    """
    home = next((m for m in _HOMES if not name.startswith("__") and hasattr(m, name)), None)
    if home is None:
        raise AttributeError(f"module 'data_prep.synthetic' has no attribute {name!r}")
    warnings.warn(f"{_MOVED} ({name} is {home.__name__}.{name})", DeprecationWarning, stacklevel=2)
    return getattr(home, name)


if __name__ == "__main__":
    warnings.warn(f"{_MOVED} (python -m data_prep.synthemo)", DeprecationWarning, stacklevel=1)
    sys.exit(synthemo.main(prog="python -m data_prep.synthetic"))
