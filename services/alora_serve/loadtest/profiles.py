"""What a load test runs: the call mix a user follows and a profile that bounds the run."""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_USERS = 512  # of one stage (one Locust process)
ProfileName = Literal["smoke", "capacity", "overload", "soak", "ramp"]


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


class Stage(BaseModel):
    """``users`` users for ``duration_s`` seconds (0 users: idle, e.g. to watch scale-down).

    Without ``of_capacity`` each user thinks between turns (the mix's think times): a
    closed loop, whose rate falls as the server slows. With it, the users together offer
    that share of the machine's capacity (turns a second; a turn is a Generate, then one
    intrinsic call), each user starting turns at Poisson times whatever the last one took,
    as many independent clients do: the rate holds when the server slows, until every
    user waits on a call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: int = Field(ge=0, le=MAX_USERS)
    duration_s: int = Field(ge=5)
    of_capacity: float | None = Field(default=None, gt=0, le=10)

    def plan(self, capacity_per_s: float | None) -> dict:
        """What the Locust process follows: users, seconds and the turns a second they
        offer together (None: closed loop)."""
        rate = None
        if self.of_capacity is not None and self.users:
            if capacity_per_s is None:
                raise ValueError(
                    "this profile offers load as a share of the machine's capacity: give "
                    "--capacity, the intrinsic calls a second the capacity profile measured "
                    "(its summary's capacity.intrinsic_calls_per_s)"
                )
            rate = self.of_capacity * capacity_per_s
        return {"users": self.users, "duration_s": self.duration_s, "turns_per_s": rate}


class Pacer:
    """When one user starts its next turn: the mix's think time after each turn in a
    closed loop; in a stage that offers a rate, at Poisson times, each start an
    exponential gap after the one planned before it whatever the turns took (a late user
    starts at once and catches up), so that the users together start turns at the
    offered rate. A new stage plans afresh from the turn just made."""

    def __init__(self, rng: random.Random, mix: CallMix) -> None:
        self._rng, self._mix = rng, mix
        self._stage: dict | None = None
        self._planned = 0.0  # when the user's next turn is due

    def pause_s(self, stage: dict | None, turn_started: float, now: float) -> float:
        """How long to wait, at ``now``, after the turn that started at ``turn_started``."""
        if stage is None or not stage["turns_per_s"]:
            self._stage = None
            return self._rng.uniform(*self._mix.think_s)
        if stage != self._stage:
            self._stage, self._planned = stage, turn_started
        self._planned += self._rng.expovariate(stage["turns_per_s"] / stage["users"])
        return max(0.0, self._planned - now)


def stage_windows(plan: list[dict], start: float = 0.0) -> list[tuple[dict, float, float]]:
    """Each stage of ``plan`` ({"duration_s", ...}, in order) with when it begins and
    ends, the first beginning at ``start``."""
    windows, begin = [], start
    for stage in plan:
        windows.append((stage, begin, begin + stage["duration_s"]))
        begin += stage["duration_s"]
    return windows


class LoadProfile(BaseModel):
    """Bounds of one run: stages of user counts, in order; it always stops by itself (the
    stages' end or the call cap). Each stage's first ``settle_s`` seconds are left out of
    its figures (users still starting, queues filling)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[Stage] = Field(min_length=1)
    spawn_rate: float = Field(gt=0, description="users started per second")
    max_calls: int = Field(ge=1, description="the run stops after this many calls")
    settle_s: float = Field(default=10.0, ge=0)
    # On two CPU cores one intrinsic call alone takes about 1 s, three composed about 5 s.
    slo_intrinsic_p95_s: float = Field(
        default=8.0, gt=0, description="intrinsic calls' p95 bound: capacity's and goodput's"
    )
    tolerated_codes: tuple[str, ...] = Field(
        default=(), description="statuses the run expects (overload: refusals)"
    )
    mix: CallMix = CallMix()

    @model_validator(mode="after")
    def _someone_calls(self) -> LoadProfile:
        if self.users == 0:
            raise ValueError("at least one stage needs users")
        if self.run_time_s > 4 * 3600:
            raise ValueError(f"a run lasts at most 4 h, these stages last {self.run_time_s} s")
        if self.settle_s >= (shortest := min(s.duration_s for s in self.stages)):
            raise ValueError(
                f"settle_s ({self.settle_s:g} s) must be shorter than the shortest stage "
                f"({shortest} s): each stage's figures come after its settle"
            )
        return self

    @property
    def users(self) -> int:
        return max(stage.users for stage in self.stages)

    @property
    def run_time_s(self) -> int:
        return sum(stage.duration_s for stage in self.stages)

    def plan(self, capacity_per_s: float | None = None) -> list[dict]:
        return [stage.plan(capacity_per_s) for stage in self.stages]

    def with_users(self, users: int) -> LoadProfile:
        """The same stages scaled so that the busiest has ``users`` (a stage with users
        keeps at least one)."""
        if users < 1:
            raise ValueError(f"a run needs at least one user, not {users}")
        factor = users / self.users
        return self._with_stages(
            [{"users": max(min(s.users, 1), round(s.users * factor))} for s in self.stages]
        )

    def with_run_time(self, seconds: int) -> LoadProfile:
        """The same stages, each stretched or shrunk in proportion; the settle shrinks
        with the stage shrunk most, so that it stays shorter than every stage."""
        if seconds < 1:
            raise ValueError(f"a run lasts at least a second, not {seconds}")
        factor = seconds / self.run_time_s
        durations = [max(5, round(s.duration_s * factor)) for s in self.stages]
        shrunk = min(new / s.duration_s for new, s in zip(durations, self.stages, strict=True))
        return self._with_stages(
            [{"duration_s": d} for d in durations], settle_s=self.settle_s * min(1.0, shrunk)
        )

    def _with_stages(self, changes: list[dict], **fields: float) -> LoadProfile:
        """A copy, validated, with each stage updated by its ``changes`` and ``fields``
        replaced."""
        stages = [{**s.model_dump(), **c} for s, c in zip(self.stages, changes, strict=True)]
        return LoadProfile.model_validate({**self.model_dump(), "stages": stages, **fields})


PROFILES: dict[ProfileName, LoadProfile] = {
    # Every call type within a minute on two CPU cores: composed calls as often as single.
    "smoke": LoadProfile(
        stages=[Stage(users=2, duration_s=60)],
        spawn_rate=1,
        max_calls=400,
        mix=CallMix(composed_weight=2),
    ),
    # Steps of users; the report names the busiest step with no errors and intrinsic p95
    # within the SLO: the machine's capacity.
    "capacity": LoadProfile(
        stages=[Stage(users=u, duration_s=120) for u in (1, 2, 3, 4, 6, 8, 12)],
        spawn_rate=2,
        max_calls=50_000,
    ),
    # A light load (the baseline), three times the capacity from more users than the
    # gateway admits at once, the light load while the backlog drains, and once more:
    # refusals must be quick, accepted calls within their deadline, and the last stage
    # as fast as the first (recovery).
    "overload": LoadProfile(
        stages=[
            Stage(users=4, duration_s=120, of_capacity=0.3),
            Stage(users=48, duration_s=240, of_capacity=3.0),
            Stage(users=4, duration_s=120, of_capacity=0.3),
            Stage(users=4, duration_s=120, of_capacity=0.3),
        ],
        spawn_rate=8,
        max_calls=50_000,
        tolerated_codes=("RESOURCE_EXHAUSTED",),
    ),
    # 70% of the capacity for half an hour; the first five minutes fill the KV stores
    # (bounded) and are left out of the memory comparison.
    "soak": LoadProfile(
        stages=[Stage(users=8, duration_s=1800, of_capacity=0.7)],
        spawn_rate=1,
        max_calls=500_000,
        settle_s=300,
    ),
    # For autoscaling (topology/autoscaling.yaml): calm, busy long enough for Serve to
    # add a decode replica and for it to start, calm again long enough for Serve to remove
    # it. A backend that checks every turn (answerability before its short answer is
    # trusted, with uncertainty every other turn): the checks keep the decode worker busy.
    "ramp": LoadProfile(
        stages=[
            Stage(users=1, duration_s=60),
            Stage(users=8, duration_s=300),
            Stage(users=1, duration_s=240),
        ],
        spawn_rate=1,
        max_calls=50_000,
        mix=CallMix(
            single=["answerability"],
            composed=["answerability", "uncertainty"],
            composed_weight=1,
            single_weight=1,
            max_tokens=8,
            think_s=(0.2, 0.5),
        ),
    ),
}
