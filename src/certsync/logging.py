"""structlog set-up: JSON lines in a container, readable console output on a terminal.

Every event goes through the redactor last, so a token that slipped into a
message or a field is replaced before anything is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

from certsync.redaction import Redactor

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _redacted(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, redact) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def redacting(redact: Redactor) -> structlog.types.Processor:
    """A structlog processor: no secret `redact` knows survives in any field."""

    def processor(
        _: Any, __: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        return {k: _redacted(v, redact) for k, v in event_dict.items()}

    return processor


def configure(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
) -> None:
    """Logs go to stderr, so `--format json` output on stdout stays one clean document.

    `stream` may be a `terminal.StatusLine` over stderr, which keeps a progress
    line and the log lines apart.
    """
    stream = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redacting(redactor or Redactor()),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
