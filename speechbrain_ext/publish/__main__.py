"""``python -m speechbrain_ext.publish export|push ...``: see :mod:`speechbrain_ext.publish.cli`."""

import sys

from speechbrain_ext.publish.cli import main

sys.exit(main())
