"""The `certsync` command: arguments, the terminal, the tables and JSON a person reads.

Public surface: `main` (the console script), `build_parser`.
"""

from certsync.cli.main import main
from certsync.cli.parser import build_parser

__all__ = ["build_parser", "main"]
