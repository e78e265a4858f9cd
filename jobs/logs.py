"""Log formats: plain text with the time, text without it (where a supervisor such as honcho
stamps each line), and one JSON object per line. `STEWARD_LOG_FORMAT` picks one.

Text lines escape the line breaks of their message, so text a user supplied (a reason, a
name) cannot forge a line of its own; a traceback still follows its line as usual.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
PLAIN_FORMAT = "[%(levelname)s] %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.replace("\r", "\\r").replace("\n", "\\n")
        return super().formatMessage(record)


class JsonLineFormatter(JsonFormatter):
    """python-json-logger's formatter with the standard fields renamed for log shippers; a
    run's lines carry `run_id`, `job` and `attempt` as fields of their own."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level"})
        super().__init__(JSON_FIELDS, *args, **kwargs)


def logging_config(*, log_format: str, level: str) -> dict:
    """The `LOGGING` setting for one of the formats "text", "plain" or "json"."""
    formatters = {
        "text": {"()": OneLineFormatter, "format": TEXT_FORMAT},
        "plain": {"()": OneLineFormatter, "format": PLAIN_FORMAT},
        "json": {"()": JsonLineFormatter},
    }
    if log_format not in formatters:
        raise ValueError(
            f"STEWARD_LOG_FORMAT={log_format!r}; choose one of {', '.join(formatters)}"
        )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"steward": formatters[log_format]},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "steward"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # The development server's request lines, in the same format as the rest.
            "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
