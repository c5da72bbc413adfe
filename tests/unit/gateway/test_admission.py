from __future__ import annotations

import contextlib

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from alora_serve.gateway.admission import Admission, OverloadedError
from alora_serve.gateway.failures import to_call_error
from alora_serve.gateway.metrics import GatewayCollector


def test_slots_up_to_the_limit_then_refusal() -> None:
    admission = Admission(limit=2)
    with contextlib.ExitStack() as held:
        held.enter_context(admission.slot())
        assert admission.in_flight == 1
        held.enter_context(admission.slot())
        assert admission.in_flight == 2
        with pytest.raises(OverloadedError, match="limit of 2 calls") as caught:
            held.enter_context(admission.slot())
        assert admission.in_flight == 2
        with pytest.raises(OverloadedError):
            held.enter_context(admission.slot())
        assert admission.in_flight == 2
    assert admission.in_flight == 0
    error = to_call_error(caught.value)
    assert (error.code.name, error.reason, error.retry_after_s) == (
        "RESOURCE_EXHAUSTED",
        "OVERLOADED",
        1.0,
    )
    with admission.slot():  # room again
        assert admission.in_flight == 1


def test_a_failing_call_frees_its_slot() -> None:
    admission = Admission(limit=1)
    with pytest.raises(RuntimeError, match="boom"), admission.slot():
        raise RuntimeError("boom")
    assert admission.in_flight == 0
    with admission.slot():
        assert admission.in_flight == 1


def test_a_refused_call_takes_no_slot() -> None:
    admission = Admission(limit=1)
    with admission.slot():
        with pytest.raises(OverloadedError), admission.slot():
            pytest.fail("a refused call must not run")
        assert admission.in_flight == 1
    assert admission.in_flight == 0


def samples(admission: Admission) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(admission))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_back_pressure_counts_as_rejections_by_reason_too_long_input_does_not() -> None:
    admission = Admission(limit=1)
    admission.record("RunIntrinsics", "RESOURCE_EXHAUSTED", "OVERLOADED")
    admission.record("RunIntrinsics", "RESOURCE_EXHAUSTED", "TOO_MANY_LEASES")
    admission.record("RunIntrinsics", "RESOURCE_EXHAUSTED", "OVERLOADED")
    admission.record("RunIntrinsics", "RESOURCE_EXHAUSTED", "INPUT_TOO_LONG")
    admission.record("RunIntrinsics", "UNAVAILABLE", "WORKER_UNAVAILABLE")
    assert admission.rejected == {"OVERLOADED": 2, "TOO_MANY_LEASES": 1}
    rejected = {
        labels: value
        for (name, labels), value in samples(admission).items()
        if name == "alora_gateway_rejected_calls_total"
    }
    assert rejected == {(("reason", "OVERLOADED"),): 2, (("reason", "TOO_MANY_LEASES"),): 1}


def test_the_collector_reports_in_flight_limit_and_calls() -> None:
    admission = Admission(limit=1)
    admission.record("RunIntrinsics", "OK")
    admission.record("RunIntrinsics", "OK")
    admission.record("RunIntrinsics", "NOT_FOUND")
    admission.record("Generate", "OK")
    with admission.slot():
        during = samples(admission)
    after = samples(admission)

    assert during[("alora_gateway_in_flight_calls", ())] == 1
    assert after[("alora_gateway_in_flight_calls", ())] == 0
    assert after[("alora_gateway_max_in_flight_calls", ())] == 1
    calls = {
        labels: value
        for (name, labels), value in after.items()
        if name == "alora_gateway_calls_total"
    }
    assert calls == {
        (("code", "OK"), ("method", "RunIntrinsics")): 2,
        (("code", "NOT_FOUND"), ("method", "RunIntrinsics")): 1,
        (("code", "OK"), ("method", "Generate")): 1,
    }


def test_the_collector_exposes_text_format() -> None:
    admission = Admission(limit=64)
    registry = CollectorRegistry()
    registry.register(GatewayCollector(admission))
    text = generate_latest(registry).decode()
    assert "alora_gateway_max_in_flight_calls 64.0" in text
    assert "alora_gateway_rejected_calls_total{" not in text  # none refused yet
    assert "alora_gateway_calls_total{" not in text  # no calls yet
    admission.record("Generate", "UNAVAILABLE")
    text = generate_latest(registry).decode()
    assert 'alora_gateway_calls_total{code="UNAVAILABLE",method="Generate"} 1.0' in text
