"""`python -m rwscaler` runs the command line."""

import sys

from rwscaler.cli import main

sys.exit(main())
