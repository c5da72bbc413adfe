"""Structured logs: one JSON object a line on standard error (Ray files each worker's and
forwards them to the driver), with the id of the request being served. Messages name
what happened; prompt, document and token contents are never logged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from alora_serve.observability.context import current_request_id

LogFormat = Literal["json", "text"]
PACKAGE_LOGGER = "alora_serve"
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _CallFields(logging.Filter):
    """Adds the request id (the front door's in this process, else the one ``fields()``
    has: what a framework carried here) and ``fields()`` to records."""

    def __init__(self, fields: Callable[[], Mapping[str, str]] | None) -> None:
        super().__init__()
        self._fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        extra = dict(self._fields()) if self._fields else {}
        extra["request_id"] = current_request_id.get() or extra.get("request_id", "")
        for key, value in extra.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure_logging(
    log_format: LogFormat = "json",
    level: str = "INFO",
    fields: Callable[[], Mapping[str, str]] | None = None,
) -> None:
    """Route the package's logs through one handler in this process (calling again
    replaces it). ``fields``: more per-record fields, e.g. the request id as a framework
    carried it across processes (none overrides a field the record has)."""
    handler = logging.StreamHandler()
    handler.set_name("alora_serve")
    handler.addFilter(_CallFields(fields))
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    logger = logging.getLogger(PACKAGE_LOGGER)
    for old in [h for h in logger.handlers if h.get_name() == "alora_serve"]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # not a second time, unstructured, through the root logger
