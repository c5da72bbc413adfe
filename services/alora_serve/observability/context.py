"""The request id a call carries through every hop, and the tenant's hash that stands
for the tenant in logs (tenant ids are never written)."""

from __future__ import annotations

import contextvars
import hashlib
import re
import uuid

REQUEST_ID_HEADER = "x-request-id"  # gRPC metadata key and HTTP header alike
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Set by the front door for the call it serves; each hop reads it from here or from the
# framework that carried it across (Ray Serve's request context).
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "alora_request_id", default=""
)


def request_id_from(offered: str | None) -> str:
    """A client's own id when it is a plain token (so its logs and ours join), else a
    new one: an id becomes a log field, so nothing else is taken from outside."""
    if offered and _ACCEPTED_ID.match(offered):
        return offered
    return uuid.uuid4().hex


def tenant_hash(tenant: str) -> str:
    """Stands for a tenant in logs: stable and short, never the id itself."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:12]
