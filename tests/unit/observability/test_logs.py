from __future__ import annotations

import io
import json
import logging

import pytest

from alora_serve.observability.context import current_request_id, request_id_from, tenant_hash
from alora_serve.observability.logs import PACKAGE_LOGGER, configure_logging


@pytest.fixture
def captured():
    """The package logger's output, as configured, in a buffer; restored afterwards."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    buffer = io.StringIO()
    yield buffer
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def _configure(buffer: io.StringIO, log_format: str = "json", fields=None) -> None:
    configure_logging(log_format, "INFO", fields)
    (handler,) = logging.getLogger(PACKAGE_LOGGER).handlers
    handler.setStream(buffer)


def test_records_are_json_with_the_request_id_and_extra_fields(captured) -> None:
    _configure(captured, fields=lambda: {"deployment": "ingress"})
    token = current_request_id.set("req-1")
    try:
        logging.getLogger("alora_serve.calls").info("call finished", extra={"code": "OK"})
    finally:
        current_request_id.reset(token)
    record = json.loads(captured.getvalue())
    assert record["message"] == "call finished" and record["level"] == "INFO"
    assert (record["request_id"], record["deployment"], record["code"]) == (
        "req-1",
        "ingress",
        "OK",
    )
    assert record["logger"] == "alora_serve.calls" and "time" in record


def test_configuring_again_replaces_the_handler(captured) -> None:
    _configure(captured)
    _configure(captured, "text")
    assert len(logging.getLogger(PACKAGE_LOGGER).handlers) == 1
    logging.getLogger("alora_serve.x").warning("plain")
    assert captured.getvalue().rstrip().endswith("WARNING alora_serve.x [] plain")


def test_a_framework_id_is_used_when_the_front_door_set_none(captured) -> None:
    _configure(captured, fields=lambda: {"request_id": "from-serve"})
    logging.getLogger("alora_serve.y").info("hop")
    assert json.loads(captured.getvalue())["request_id"] == "from-serve"


@pytest.mark.parametrize("offered", ["abc-123", "trace:span.1", "A" * 128])
def test_plain_client_ids_are_kept(offered: str) -> None:
    assert request_id_from(offered) == offered


@pytest.mark.parametrize("offered", [None, "", "has space", 'quote"', "A" * 129, "ü"])
def test_other_client_ids_are_replaced(offered) -> None:
    made = request_id_from(offered)
    assert made != offered and len(made) == 32 and made.isalnum()


def test_the_tenant_hash_is_stable_short_and_not_the_tenant() -> None:
    assert tenant_hash("acme") == tenant_hash("acme") != tenant_hash("acme2")
    assert len(tenant_hash("acme")) == 12 and "acme" not in tenant_hash("acme")
