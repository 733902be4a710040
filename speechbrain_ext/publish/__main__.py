"""``python -m speechbrain_ext.publish export|push ...``: see :mod:`speechbrain_ext.publish.cli`."""

import sys

from speechbrain_ext.publish.cli import main

if __name__ == "__main__":  # importing the package's modules (test_errors walks them) must not run the CLI
    sys.exit(main())
