"""Store work for a 20,000-row users CSV: validation, first import, re-import, and with --prune.

Prints seconds and the ratio to the one-second budget the store issue sets.
Run with `make bench-store` (or `python bench/users_csv.py [rows]`).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from certsync.mappings_file import load_mapping_file
from certsync.store import Store

BUDGET_SECONDS = 1.0


def main(rows: int = 20_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = ["natecosmic,monotree,monotree_email"]
        for i in range(rows):
            if i % 10 == 0:
                lines.append(f"nc-{i:08d},,user{i}@example.com")
            else:
                lines.append(f"nc-{i:08d},{100_000 + i},")
        (folder / "users.csv").write_text("\n".join(lines) + "\n")
        (folder / "m.toml").write_text(
            'users_csv = "users.csv"\n[[types]]\nnatecosmic = "t"\nmonotree = 1\n'
        )

        started = time.perf_counter()
        mapping_file = load_mapping_file(folder / "m.toml")
        parsed = time.perf_counter() - started

        store = Store(f"sqlite:///{folder / 'c.db'}")
        started = time.perf_counter()
        first = store.mappings.import_file(mapping_file)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        again = store.mappings.import_file(mapping_file, prune=True)
        again_s = time.perf_counter() - started
        store.close()

    unchanged = again.unchanged - 1  # the one type mapping
    print(f"users CSV of {rows} rows: {first.users_added} added, then {unchanged} unchanged")
    print(f"  {'step':28} {'seconds':>8} {'/ budget':>9}")
    for name, seconds in (
        ("parse and validate file+CSV", parsed),
        ("store: first import", first_s),
        ("store: re-import with prune", again_s),
    ):
        print(f"  {name:28} {seconds:8.3f} {seconds / BUDGET_SECONDS:9.2f}")
    print(f"target: store work well under {BUDGET_SECONDS:.0f} s (ratio < 1.00)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
