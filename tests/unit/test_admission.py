"""Write admission: the in-flight limit, and the write rate a process keeps to while it is overloaded.

The clock is the module's own `time.monotonic`, replaced so that each step happens at a chosen moment.
"""

from __future__ import annotations

import pytest

from service.api import admission
from service.api.admission import OVERLOAD_MEMORY, Admission


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(admission.time, "monotonic", fake)
    return fake


def started(gate: Admission, attempts: int) -> int:
    """How many of `attempts` writes, arriving at one moment and each finishing at once, start."""
    return sum(not gate.refuses() for _ in range(attempts))


def test_below_the_in_flight_limit_writes_start_however_fast_they_come(clock: Clock) -> None:
    gate = Admission(max_in_flight=4, overload_rate=10)
    assert started(gate, 1000) == 1000  # one at a time, all at one moment: never overloaded
    assert not gate.shedding


def test_a_refusal_makes_the_process_overloaded_and_the_rate_then_holds(clock: Clock) -> None:
    gate = Admission(max_in_flight=1, overload_rate=10)
    gate.in_flight = 1
    assert gate.refuses()  # beyond the in-flight limit
    assert gate.shedding
    gate.in_flight = 0
    assert started(gate, 5) == 1  # a tenth of a second's writes (one) may start at once, then none
    clock.now += 0.1
    assert started(gate, 5) == 1
    clock.now += 0.5
    assert started(gate, 20) == 1  # the budget does not pile up beyond a tenth of a second
    taken = 0
    for _ in range(100):  # a flood over half a second (every refusal keeps the process overloaded)
        clock.now += 0.005
        taken += started(gate, 3)
    assert 4 <= taken <= 6  # 10 a second
    assert gate.shedding


def test_the_rate_lapses_once_refusals_stop(clock: Clock) -> None:
    gate = Admission(max_in_flight=1, overload_rate=10)
    gate.in_flight = 1
    assert gate.refuses()
    gate.in_flight = 0
    clock.now += OVERLOAD_MEMORY
    assert not gate.shedding
    assert started(gate, 50) == 50


def test_no_rate_means_only_the_in_flight_limit(clock: Clock) -> None:
    gate = Admission(max_in_flight=1, overload_rate=0)
    gate.in_flight = 1
    assert gate.refuses()
    gate.in_flight = 0
    assert started(gate, 50) == 50
