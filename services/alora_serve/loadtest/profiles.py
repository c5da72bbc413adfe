"""What a load test runs: the call mix a user follows and a profile that bounds the run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ProfileName = Literal["smoke", "capacity", "overload", "soak"]


class CallMix(BaseModel):
    """After each base-model turn (a streamed Generate), a user makes one intrinsic call
    (weight ``single``) or one composed call of ``composed`` (weight ``composed_weight``),
    then thinks between ``think_s`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    single: list[str] = Field(default_factory=lambda: ["answerability", "uncertainty"])
    composed: list[str] = Field(
        default_factory=lambda: ["answerability", "uncertainty", "context_relevance"]
    )
    single_weight: int = Field(default=2, ge=0)
    composed_weight: int = Field(default=1, ge=0)
    max_tokens: int = Field(default=32, ge=1, description="of each base-model turn")
    think_s: tuple[float, float] = (0.5, 2.0)

    @model_validator(mode="after")
    def _sensible(self) -> CallMix:
        if self.single_weight + self.composed_weight == 0:
            raise ValueError("the call mix needs a positive weight for single or composed")
        if not 0 <= self.think_s[0] <= self.think_s[1]:
            raise ValueError(f"think_s must be (low, high) with 0 <= low <= high: {self.think_s}")
        return self


class LoadProfile(BaseModel):
    """Bounds of one run: it always stops by itself (time and call cap)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: int = Field(ge=1, le=512)
    spawn_rate: float = Field(gt=0, description="users started per second")
    run_time_s: int = Field(ge=5, le=4 * 3600)
    max_calls: int = Field(ge=1, description="the run stops after this many calls")
    slo_intrinsic_p95_s: float = Field(default=5.0, gt=0, description="goodput's bound")
    mix: CallMix = CallMix()


PROFILES: dict[ProfileName, LoadProfile] = {
    # Every call type within a minute on two CPU cores: composed calls as often as single.
    "smoke": LoadProfile(
        users=2, spawn_rate=1, run_time_s=60, max_calls=400, mix=CallMix(composed_weight=2)
    ),
    "capacity": LoadProfile(users=8, spawn_rate=0.5, run_time_s=600, max_calls=20_000),
    "overload": LoadProfile(users=24, spawn_rate=4, run_time_s=300, max_calls=20_000),
    "soak": LoadProfile(users=4, spawn_rate=0.5, run_time_s=1800, max_calls=200_000),
}
