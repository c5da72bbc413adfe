"""Spans nest within a process and continue across one through a carrier, as a Serve
handle call carries it (``topology.handles``). An in-memory exporter is the collector."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from alora_serve.observability import tracing


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first in this process sets it
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


def test_spans_continue_across_a_carrier(exporter) -> None:
    exporter.clear()
    client = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    gateway = tracing.span("gateway", {"traceparent": client}, tracing.SpanKind.SERVER)
    with gateway, tracing.span("ingress.run_many", intrinsics=["a", "b"]):
        sent = [tracing.carrier(), tracing.carrier()]  # two workers called
    for carrier in sent:  # the workers' processes
        with tracing.span("decode.run_many", carrier), tracing.span("prefill.lease"):
            pass
    spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
    assert {s.context.trace_id for s in spans.values()} == {0x0AF7651916CD43DD8448EB211C80319C}

    def parent(span) -> str:
        return spans[span.parent.span_id].name if span.parent.span_id in spans else "client"

    tree = sorted((s.name, parent(s)) for s in spans.values())
    assert tree == [
        ("decode.run_many", "ingress.run_many"),
        ("decode.run_many", "ingress.run_many"),
        ("gateway", "client"),
        ("ingress.run_many", "gateway"),
        ("prefill.lease", "decode.run_many"),
        ("prefill.lease", "decode.run_many"),
    ]
    (ingress,) = [s for s in spans.values() if s.name == "ingress.run_many"]
    assert ingress.attributes["intrinsics"] == ("a", "b")


def test_a_failing_hop_records_its_error(exporter) -> None:
    exporter.clear()
    with pytest.raises(ValueError), tracing.span("decode.run_many"):
        raise ValueError("bad input")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.events[0].name == "exception"


def test_without_an_endpoint_tracing_stays_off(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.configure_tracing(None, "alora-serve-test") is False
