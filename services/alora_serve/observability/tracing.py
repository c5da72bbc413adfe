"""OpenTelemetry traces, off unless an OTLP endpoint is configured: a span for each hop
of a call (gateway, ingress, decode worker, prefill service), joined across processes by
W3C trace context. Off, spans are OpenTelemetry's no-op ones."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

_TRACER = trace.get_tracer("alora_serve")  # follows the provider configured later
Carrier = dict[str, str]


def configure_tracing(endpoint: str | None, service: str, sample_ratio: float = 1.0) -> bool:
    """Export this process's spans to the OTLP/HTTP collector at ``endpoint`` (e.g.
    ``http://127.0.0.1:4318``; None: OpenTelemetry's own ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    if set); once per process. Returns whether tracing is on."""
    endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return True
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    return True


def carrier() -> Carrier:
    """The current span's context, to send along with a call to another process."""
    found: Carrier = {}
    propagate.inject(found)
    return found


@contextlib.contextmanager
def span(
    name: str,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    **attributes: Any,
) -> Iterator[trace.Span]:
    """A span named ``name``, the child of the current span or of ``parent`` (a carrier
    received from another process)."""
    context = propagate.extract(parent) if parent else None
    with _TRACER.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes
    ) as current:
        yield current
