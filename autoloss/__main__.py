"""``python -m autoloss``: the command line."""

import sys

from autoloss.cli import main

sys.exit(main())
