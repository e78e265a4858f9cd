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


# What Dramatiq's worker logs, at WARNING, for every message a middleware skipped.
SKIPPED_LINE = "Message %s was skipped."


class HeldBackSkips(logging.Filter):
    """Drops Dramatiq's "was skipped" line for a message the queue controls held back (a
    paused queue, a queue at its concurrency or rate limit): those go back to their queue by
    design, often many a second, and would drown the lines that matter."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != SKIPPED_LINE or not record.args:
            return True
        return not getattr(record.args[0], "held_back", False)


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
        "filters": {"held_back": {"()": HeldBackSkips}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "steward"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "dramatiq.worker.WorkerThread": {"filters": ["held_back"]},
            # The development server's request lines, in the same format as the rest.
            "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
