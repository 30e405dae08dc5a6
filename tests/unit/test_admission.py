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
    assert started(gate, 5) == 1  # one write may start at once, then none
    clock.now += 0.2
    assert started(gate, 5) == 1  # one credential writing: its share is half the rate, one kept free
    clock.now += 0.5
    assert started(gate, 20) == 1  # the budget does not pile up beyond one write
    taken = 0
    for _ in range(200):  # a flood over a second (every refusal keeps the process overloaded)
        clock.now += 0.005
        taken += started(gate, 3)
    assert 4 <= taken <= 6  # 5 a second
    assert gate.shedding


def test_the_rate_holds_however_many_credentials_share_it(clock: Clock) -> None:
    gate = Admission(max_in_flight=1, overload_rate=10)
    gate.in_flight = 1
    assert gate.refuses()
    gate.in_flight = 0
    taken = 0
    for step in range(200):  # a second of writes from 50 credentials, each asking 20 times a second
        clock.now += 0.005
        taken += sum(not gate.refuses(f"Bearer {step % 10 * 5 + n}") for n in range(5))
    assert taken <= 12  # the rate, and at most one write more at once


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


def test_while_overloaded_a_flooding_credential_cannot_take_the_writes_of_a_desk(clock: Clock) -> None:
    """One script floods with its token; a desk publishes once every two seconds with its own. The script gets at
    most its share of the rate, and every one of the desk's writes starts."""
    gate = Admission(max_in_flight=1, overload_rate=10)
    for known in ("Bearer script", "Bearer desk"):
        gate.trust(known, 201)  # both answered before: known credentials, each its own share
    gate.in_flight = 1
    assert gate.refuses("Bearer script")
    gate.in_flight = 0
    script = desk = desk_refused = 0
    for step in range(2000):  # ten seconds, a step every 5 ms
        clock.now += 0.005
        script += sum(not gate.refuses("Bearer script") for _ in range(3))  # 600 attempts a second
        if step % 400 == 399:
            if gate.refuses("Bearer desk"):
                desk_refused += 1
            else:
                desk += 1
    assert gate.shedding
    assert (desk, desk_refused) == (5, 0)
    assert 40 <= script <= 55, script  # half the rate (its share beside one kept free), not all of it


def test_a_quiet_process_shares_nothing_out(clock: Clock) -> None:
    """Shares only count while overloaded: below the in-flight limit every credential writes as fast as it likes."""
    gate = Admission(max_in_flight=4, overload_rate=10)
    assert sum(not gate.refuses("Bearer one") for _ in range(500)) == 500
    assert sum(not gate.refuses("Bearer two") for _ in range(500)) == 500


def test_made_up_credentials_share_one_part_and_a_known_desk_keeps_writing(clock: Clock) -> None:
    """A flood with a new made-up token every request: all of them together are one writer beside the desk, whose
    token this process has answered before. A credential answered 401 is forgotten."""
    gate = Admission(max_in_flight=1, overload_rate=10)
    gate.trust("Bearer desk", 200)
    gate.in_flight = 1
    assert gate.refuses("Bearer made-up 0")
    gate.in_flight = 0
    flood = desk = 0
    for step in range(2000):  # ten seconds
        clock.now += 0.005
        flood += sum(not gate.refuses(f"Bearer made-up {step}-{n}") for n in range(3))
        if step % 400 == 399:
            desk += not gate.refuses("Bearer desk")
    assert desk == 5
    assert 40 <= flood <= 55, flood  # one share between them all
    assert gate.knows("Bearer desk")
    gate.trust("Bearer desk", 401)  # revoked: from now on it is one of the unknown
    assert gate.knows("Bearer script") is False and not gate.knows("Bearer desk")
