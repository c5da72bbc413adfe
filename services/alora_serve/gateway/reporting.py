"""What the front door reports of each call it finishes: a log line (what was called, how
it ended, how long it took, for whom: the tenant's hash; never the conversation), and
for intrinsic calls the per-intrinsic metrics and a line with their phases and tokens."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from alora_serve.gateway.failures import to_call_error
from alora_serve.gateway.metrics import CallMetrics
from alora_serve.intrinsics.call import IntrinsicResult, IntrinsicsCall
from alora_serve.observability.context import tenant_hash

logger = logging.getLogger("alora_serve.calls")


def log_call(method: str, code: str, reason: str, seconds: float, tenant: str | None) -> None:
    logger.info(
        "call finished",
        extra={
            "method": method,
            "code": code,
            "reason": reason,
            "seconds": round(seconds, 6),
            "tenant_hash": tenant_hash(tenant) if tenant is not None else "",
        },
    )


async def reported(
    call: IntrinsicsCall,
    received_at: float,
    run: Callable[[], Awaitable[list[IntrinsicResult]]],
    metrics: CallMetrics | None,
) -> list[IntrinsicResult]:
    """``run()``'s results, counted in ``metrics`` (None: metrics off) and logged."""
    try:
        results = await run()
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            code, reason = "CANCELLED", ""
        else:
            error = to_call_error(exc)
            code, reason = error.code.name, error.reason
        if metrics is not None:
            metrics.failed(call.intrinsics, code, reason, time.perf_counter() - received_at)
        _log_intrinsics(call, code, reason, [])
        raise
    if metrics is not None:
        metrics.succeeded(results)
    _log_intrinsics(call, "OK", "", results)
    return results


def _log_intrinsics(
    call: IntrinsicsCall, code: str, reason: str, results: list[IntrinsicResult]
) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "intrinsics finished",
        extra={
            "intrinsics": list(call.intrinsics),
            "code": code,
            "reason": reason,
            "tenant_hash": tenant_hash(call.tenant),
            "results": [
                {
                    "intrinsic": r.name,
                    "phases_s": {
                        "queue": round(r.timings.queue_s, 6),
                        "base_kv": round(r.timings.base_kv_s, 6),
                        "adapter_prefill": round(r.timings.adapter_prefill_s, 6),
                        "decode": round(r.timings.decode_s, 6),
                        "total": round(r.timings.total_s, 6),
                    },
                    "prompt_tokens": r.usage.prompt_tokens,
                    "reused_prompt_tokens": r.usage.reused_prompt_tokens,
                    "generated_tokens": r.usage.generated_tokens,
                }
                for r in results
            ],
        },
    )
