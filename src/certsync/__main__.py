"""`python -m certsync`."""

import sys

from certsync.cli.main import main

sys.exit(main())
