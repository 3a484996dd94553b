"""Secrets never leave certsync: every registered token is replaced before text is shown.

The entry point (the command line) makes one Redactor and hands it to the
logger and to the clients, whose credentials register every token they read;
there is no module-level instance for a constructor to change.
"""

from __future__ import annotations

import threading


class Redactor:
    """Replaces every registered secret with a placeholder, wherever it appears."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()

    def add(self, secret: str) -> None:
        # Very short values would redact ordinary words; real tokens are long.
        if len(secret) >= 4:
            with self._lock:
                self._secrets = self._secrets | {secret}

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text
