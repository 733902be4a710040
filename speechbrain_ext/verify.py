"""``python -m speechbrain_ext.verify a.wav b.wav --model <folder or repo id> [--prior P]``: the verify command.

The short entry point of :mod:`speechbrain_ext.publish.verify` (score two recordings
with an exported model; with a calibrated model, the log-likelihood ratio and the
decision at the prior ``P``, else accept or reject at its threshold); see there for the options.
The functions that lived here (``verify_files``, ``load_model``, ``read_audio``,
``VerifyError``) resolve to that module with a DeprecationWarning.

Example
-------
>>> main(["a.wav", "b.wav", "--model", "/nonexistent/model"])  # the message goes to stderr
2
"""

import sys

from speechbrain_ext.publish.moved import moved_names
from speechbrain_ext.publish.verify import main

__all__ = ["main"]
__getattr__ = moved_names(__name__, {
    name: ("speechbrain_ext.publish.verify", name) for name in ("VerifyError", "load_model", "read_audio",
                                                                "verify_files")
})

if __name__ == "__main__":
    sys.exit(main())
