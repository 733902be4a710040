"""Deprecated: publishing moved to :mod:`speechbrain_ext.publish`.

``python -m speechbrain_ext.hub export|push ...`` still runs, with a DeprecationWarning;
the command is now ``python -m speechbrain_ext.publish export|push ...`` (same
arguments, same output). The old names resolve to their new home with a
DeprecationWarning: ``HubError`` is :class:`speechbrain_ext.publish.PublishError`,
``export_model`` is :func:`speechbrain_ext.publish.export_model`, and so on.

Example
-------
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     from speechbrain_ext.hub import HubError
>>> HubError.__name__
'PublishError'
"""

import sys
import warnings

from speechbrain_ext.publish.moved import moved_names

_LAYOUT = "speechbrain_ext.publish.layout"
_EXPERIMENT = "speechbrain_ext.publish.experiment"
__getattr__ = moved_names(__name__, {
    "HubError": (_LAYOUT, "PublishError"),
    "export_model": ("speechbrain_ext.publish.folder", "export_model"),
    "find_checkpoint": (_EXPERIMENT, "find_checkpoint"),
    "is_export": (_LAYOUT, "is_export"),
    "push_model": ("speechbrain_ext.publish.push", "push_model"),
    "read_threshold": (_LAYOUT, "read_threshold"),
    "REQUIRED_KEYS": (_EXPERIMENT, "REQUIRED_KEYS"),
    "OPTIONAL_KEYS": (_EXPERIMENT, "OPTIONAL_KEYS"),
    **{name: (_LAYOUT, name) for name in ("MARKER", "EXPORT_INFO", "VERIFICATION", "CARD", "HPARAMS", "ONNX_FILE",
                                          "TORCHSCRIPT_FILE", "PARITY_TOLERANCE", "RELOAD_TOLERANCE")},
})


def main(argv=None):
    """``python -m speechbrain_ext.publish``'s entry point, with a DeprecationWarning.

    Example
    -------
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     main(["export", "/nonexistent/exp", "/tmp/never"])  # the message goes to stderr
    2
    """
    from speechbrain_ext.publish.cli import main as publish_main

    warnings.warn("python -m speechbrain_ext.hub is deprecated: use python -m speechbrain_ext.publish "
                  "(same commands and arguments)", DeprecationWarning, stacklevel=2)
    return publish_main(argv)


if __name__ == "__main__":
    sys.exit(main())
