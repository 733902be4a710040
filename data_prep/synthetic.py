"""Deprecated name of :mod:`data_prep.synthemo` (the SynthEmo generator), kept so that old recipes and commands work.

``data_prep.synthetic.prepare_synthemo`` and ``python -m data_prep.synthetic`` still
work and warn; use ``data_prep.synthemo`` (``python -m data_prep.synthemo``).
The generator is split into :mod:`data_prep.espeak` (the engine),
:mod:`data_prep.voices` (the voice design), :mod:`data_prep.dsp` (signal
processing) and :mod:`data_prep.synthemo` (corpus layout, manifests, command line).
"""

import sys
import warnings

from data_prep import synthemo

_MOVED = "data_prep.synthetic is deprecated: use data_prep.synthemo"


def __getattr__(name):
    """Names of :mod:`data_prep.synthemo`, with a DeprecationWarning.

    Example
    -------
    >>> import data_prep.synthetic as old
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     old.prepare_synthemo is synthemo.prepare_synthemo, caught[0].category.__name__
    (True, 'DeprecationWarning')
    """
    if name.startswith("__"):
        raise AttributeError(name)
    value = getattr(synthemo, name)
    warnings.warn(f"{_MOVED} ({name})", DeprecationWarning, stacklevel=2)
    return value


if __name__ == "__main__":
    warnings.warn(f"{_MOVED} (python -m data_prep.synthemo)", DeprecationWarning, stacklevel=1)
    sys.exit(synthemo.main(prog="python -m data_prep.synthetic"))
