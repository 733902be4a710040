#!/usr/bin/env python3
"""The SynthEmo ablations: run a suite of this folder through the package's suite runner.

    python recipes/SynthEmo/ablation/run.py contrastive     # make ablation-contrastive
    python recipes/SynthEmo/ablation/run.py emotion         # make ablation-emotion
    python recipes/SynthEmo/ablation/run.py extensions      # make ablation-extensions

The suites are data (``contrastive.yaml``, ``emotion.yaml``, ``extensions.yaml`` next to this file; a path to any
other suite file works too); every option of ``python -m speechbrain_ext.suite`` applies:
``--jobs N``, ``--background``, ``--dry-run``, ``--report-only``, ``--seeds ...``,
``--rows ...``, ``--variants ROW:key=value,...``, ``--set key=value ...``. See docs/ablations.md.
"""

import os
import sys

from speechbrain_ext.suite_runner import main


def suite_argument(argv):
    """The arguments with a suite name (``contrastive``) replaced by its file next to this script."""
    argv = list(argv)
    if argv and not argv[0].startswith("-") and not argv[0].endswith((".yaml", ".yml")):
        argv[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{argv[0]}.yaml")
    return argv


if __name__ == "__main__":
    sys.exit(main(suite_argument(sys.argv[1:])))
