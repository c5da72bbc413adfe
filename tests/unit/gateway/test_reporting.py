from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from alora_serve.adapters import InvocationNotFoundError
from alora_serve.engine.types import Usage
from alora_serve.gateway.metrics import UNKNOWN_INTRINSIC, CallMetrics
from alora_serve.gateway.reporting import reported
from alora_serve.intrinsics.call import IntrinsicRequest, IntrinsicResult, IntrinsicsCall, Timings

SECRET = "the patient's diagnosis"  # conversation text: never in a log record


def _call(*names: str) -> IntrinsicsCall:
    request = IntrinsicRequest(messages=[{"role": "user", "content": SECRET}])
    return IntrinsicsCall(intrinsics=list(names), request=request, tenant="acme")


def _result(name: str) -> IntrinsicResult:
    timings = Timings(
        total_s=0.4, queue_s=0.1, base_kv_s=0.05, adapter_prefill_s=0.2, decode_s=0.04
    )
    return IntrinsicResult(name, {"answerable": 0.9}, "{}", Usage(1000, 990, 4), timings)


def _value(metrics: CallMetrics, name: str, **labels: str) -> float:
    registry = CollectorRegistry()
    for collector in metrics.collectors():
        registry.register(collector)
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_success_counts_its_tokens_phases_and_latency(caplog) -> None:
    metrics = CallMetrics(["answerability"])

    async def run():
        return [_result("answerability")]

    with caplog.at_level(logging.INFO, "alora_serve"):
        await reported(_call("answerability"), 0.0, run, metrics)
    one = {"intrinsic": "answerability"}
    assert _value(metrics, "alora_intrinsic_requests_total", code="OK", **one) == 1
    assert _value(metrics, "alora_intrinsic_prompt_tokens_reused_total", **one) == 990
    assert _value(metrics, "alora_intrinsic_prompt_tokens_computed_total", **one) == 10
    assert _value(metrics, "alora_intrinsic_generated_tokens_total", **one) == 4
    first_token = _value(metrics, "alora_intrinsic_time_to_first_token_seconds_sum", **one)
    assert first_token == pytest.approx(0.35)
    assert _value(metrics, "alora_intrinsic_phase_seconds_sum", phase="decode", **one) == 0.04
    assert _value(metrics, "alora_intrinsic_latency_seconds_count", code="OK", **one) == 1
    (record,) = [r for r in caplog.records if r.getMessage() == "intrinsics finished"]
    assert record.results[0]["reused_prompt_tokens"] == 990 and len(record.tenant_hash) == 12
    assert SECRET not in caplog.text and "acme" not in str(vars(record))


async def test_a_failure_counts_by_code_and_reason_for_every_intrinsic_named() -> None:
    metrics = CallMetrics(["answerability", "uncertainty"])

    async def run():
        raise InvocationNotFoundError("no invocation in the prompt")

    with pytest.raises(InvocationNotFoundError):
        await reported(_call("answerability", "uncertainty"), 0.0, run, metrics)
    for name in ("answerability", "uncertainty"):
        failures = _value(
            metrics, "alora_intrinsic_failures_total", intrinsic=name, reason="INVOCATION_NOT_FOUND"
        )
        requests = _value(
            metrics, "alora_intrinsic_requests_total", intrinsic=name, code="INVALID_ARGUMENT"
        )
        assert failures == requests == 1


async def test_cancelled_calls_and_unknown_names_keep_labels_bounded() -> None:
    metrics = CallMetrics(["answerability"])

    async def run():
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await reported(_call("made-up-by-a-client"), 0.0, run, metrics)
    labels = {"intrinsic": UNKNOWN_INTRINSIC, "code": "CANCELLED"}
    assert _value(metrics, "alora_intrinsic_requests_total", **labels) == 1


async def test_with_metrics_off_calls_still_run_and_log(caplog) -> None:
    async def run():
        return [_result("answerability")]

    with caplog.at_level(logging.INFO, "alora_serve"):
        results = await reported(_call("answerability"), 0.0, run, None)
    assert [r.name for r in results] == ["answerability"]
    assert "intrinsics finished" in caplog.text
