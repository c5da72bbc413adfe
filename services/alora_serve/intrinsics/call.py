"""A call of several intrinsics on one conversation: what the serving layers pass on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alora_serve.intrinsics.rewrite import IntrinsicRequest

DEFAULT_TENANT = "default"


class IntrinsicsCall(BaseModel):
    """Several intrinsics on one conversation (they share its base KV)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intrinsics: list[str] = Field(min_length=1)
    request: IntrinsicRequest
    arguments: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-intrinsic arguments, overriding request's"
    )
    tenant: str = DEFAULT_TENANT

    def only(self, names: list[str]) -> IntrinsicsCall:
        """The part of this call for ``names`` (with their arguments)."""
        arguments = {n: a for n, a in self.arguments.items() if n in names}
        return self.model_copy(update={"intrinsics": names, "arguments": arguments})
