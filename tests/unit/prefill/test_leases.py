from __future__ import annotations

import pytest

from alora_serve.prefill.leases import LeaseTable, TooManyLeasesError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_leases_are_bounded_and_released() -> None:
    table: LeaseTable[str] = LeaseTable(max_leases=2, ttl_s=10, clock=Clock())
    first, second = table.add("a"), table.add("b")
    with pytest.raises(TooManyLeasesError, match="all 2 prefix leases"):
        table.add("c")
    assert table.pop(first) == "a"
    assert table.pop(first) is None  # released once
    table.add("c")
    assert (len(table), table.get(second), table.granted) == (2, "b", 3)


def test_unreleased_leases_expire_after_the_ttl() -> None:
    clock = Clock()
    table: LeaseTable[str] = LeaseTable(max_leases=4, ttl_s=10, clock=clock)
    old = table.add("old")
    clock.now = 6
    young = table.add("young")
    clock.now = 10
    assert table.pop_expired() == ["old"]
    assert table.get(old) is None and table.get(young) == "young"
    clock.now = 16
    assert table.pop_expired() == ["young"]
    assert (len(table), table.expired) == (0, 2)


def test_a_renewed_lease_lives_a_ttl_from_its_renewal() -> None:
    clock = Clock()
    table: LeaseTable[str] = LeaseTable(max_leases=4, ttl_s=10, clock=clock)
    held, dropped = table.add("held"), table.add("dropped")
    clock.now = 8
    assert table.renew(held) and table.renew(dropped)
    table.pop(dropped)
    assert not table.renew(dropped)  # released: nothing to renew
    clock.now = 17
    assert table.pop_expired() == []  # 17 < 8 + 10
    clock.now = 18
    assert table.pop_expired() == ["held"]
    assert not table.renew(held)


def test_limits_must_make_sense() -> None:
    with pytest.raises(ValueError):
        LeaseTable(max_leases=0, ttl_s=1)
    with pytest.raises(ValueError):
        LeaseTable(max_leases=1, ttl_s=0)
