"""The one base class of the project's errors.

Every error this package or ``data_prep`` raises on purpose (bad hparams, a
manifest or corpus not laid out as expected, a checkpoint that cannot be written,
an aborted training, a failed export) derives from :class:`SpeechBrainExtError`.
The recipe runner catches this one class to end a run with a single ``error: ...``
line instead of a traceback; anything else is a bug and keeps its traceback.

Subclasses also derive from the built-in type that fits (``ValueError``,
``FileNotFoundError``, ``RuntimeError``...), so code that caught those keeps working.

Example
-------
>>> class ManifestProblem(SpeechBrainExtError, ValueError):
...     pass
>>> isinstance(ManifestProblem("train.csv:3: no wav"), (SpeechBrainExtError, ValueError))
True
"""


class SpeechBrainExtError(Exception):
    """Base of every expected failure of this project; its message names the file, line, id or key.

    Example
    -------
    >>> str(SpeechBrainExtError("train.csv:3: empty wav path"))
    'train.csv:3: empty wav path'
    """
