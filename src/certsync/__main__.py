"""`python -m certsync`."""

import sys

from certsync.cli import main

sys.exit(main())
