"""The hold records of the breaker on both backends: a hold is recorded once, a release keeps who and when."""

from __future__ import annotations

import pytest

from tasks.state.holds import SendHolds


@pytest.fixture
def holds(state_db):
    with SendHolds(state_db) as store:
        yield store


def test_a_hold_is_recorded_once_and_a_release_keeps_the_first_who_and_when(holds):
    key = f"spring-{id(holds)}/2026-03-02/email"  # unique per run: the Postgres database is shared by the tests
    assert holds.get(key) is None
    assert holds.release(key, "nobody") is None  # not held: nothing recorded
    assert holds.hold(key, "hard bounce rate 10.00% over max 5.00%", {"outcomes": 50, "hard_bounces": 5}, at=100.0)
    assert not holds.hold(key, "complaint rate", {"outcomes": 60}, at=200.0)  # a second trip: the first is kept
    hold = holds.get(key)
    assert (hold.reason, hold.figures, hold.held_at, hold.released) == (
        "hard bounce rate 10.00% over max 5.00%", {"outcomes": 50, "hard_bounces": 5}, 100.0, False)
    released = holds.release(key, "alice", at=300.0)
    assert (released.released_by, released.released_at, released.released) == ("alice", 300.0, True)
    assert holds.release(key, "bob", at=400.0).released_by == "alice"
    assert key in {h.send_key for h in holds.all()}
