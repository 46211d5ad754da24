"""The breaker's pure logic (what counts, when it trips, how rarely it reads), its incremental read of a real
event store, and the sender's claim stage with a breaker plugged in: it stops claiming, the rest stay pending."""

from __future__ import annotations

import pytest

from tasks.channels.breaker import CHECK_INTERVAL_S, Breaker, BreakerLimits, Figures, tally, trip_for
from tasks.channels.ledger import SendLedger
from tasks.channels.limiter import ChannelLimiter
from tasks.channels.sender import SendPolicy, send_campaign
from tasks.state.db import SqliteDatabase
from tasks.state.events import DeliveryEvent, EventStore
from tests.unit.test_channels_engine import KEY, ScriptedClient, recipients

LIMITS = BreakerLimits(min_outcomes=100, max_bounce_rate=0.05, max_complaint_rate=0.003, max_filtered_rate=0.02)


def test_what_counts_as_an_outcome_a_hard_bounce_a_complaint_and_filtering():
    email = {("processed", "", ""): 100, ("delivered", "", ""): 90, ("deferred", "", ""): 7,
             ("bounced", "bounce", ""): 6, ("bounced", "blocked", ""): 3, ("dropped", "", ""): 1,
             ("complained", "", ""): 2, ("open", "", ""): 40}
    assert tally("email", email) == Figures(outcomes=100, hard_bounces=6, complaints=2, filtered=0)
    sms = {("sent", "", ""): 100, ("delivered", "", ""): 90, ("undelivered", "", "30007"): 4,
           ("failed", "", "30005"): 3, ("undelivered", "", "30006"): 2, ("undelivered", "", "30003"): 1}
    assert tally("sms", sms) == Figures(outcomes=100, hard_bounces=5, complaints=0, filtered=4)


@pytest.mark.parametrize(("figures", "reason"), [
    (Figures(99, 50, 0, 0), None),  # too few outcomes to judge
    (Figures(100, 5, 0, 0), None),  # at the limit: not over it
    (Figures(100, 6, 0, 0), "hard bounce rate 6.00% over max 5.00%"),
    (Figures(1000, 0, 4, 0), "complaint rate 0.40% over max 0.30%"),
    (Figures(1000, 0, 3, 0), None),
    (Figures(100, 0, 0, 3), "carrier filtering rate 3.00% over max 2.00%"),
])
def test_it_trips_only_over_a_limit_and_only_past_min_outcomes(figures, reason):
    trip = trip_for(figures, LIMITS)
    assert (trip.reason if trip else None) == reason


def test_min_outcomes_zero_or_a_zero_limit_turns_a_check_off():
    assert trip_for(Figures(10_000, 10_000, 0, 0), BreakerLimits(min_outcomes=0)) is None
    assert trip_for(Figures(1000, 900, 0, 0), BreakerLimits(min_outcomes=10, max_bounce_rate=0)) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_it_reads_the_events_every_tenth_of_min_outcomes_claimed_or_every_few_seconds_and_stays_tripped():
    reads: list[int] = []
    answers = [({("delivered", "", ""): 60}, 60), ({("bounced", "bounce", ""): 3, ("delivered", "", ""): 37}, 100),
               ({("bounced", "bounce", ""): 10}, 110)]

    def reader(after: int) -> tuple[dict, int]:
        reads.append(after)
        return answers.pop(0)

    clock = Clock()
    breaker = Breaker("email", LIMITS, reader, monotonic=clock)
    assert breaker.allows(4)  # the first call reads at once
    assert reads == [0]
    assert all(breaker.allows(1) for _ in range(6)) and reads == [0]  # 4 + 6 claimed: check_every is 10
    assert breaker.allows(1) and reads == [0, 60]  # incremental: from the last seq seen
    assert breaker.figures == Figures(100, 3, 0, 0)  # 3% of 100: within the limit
    clock.now += CHECK_INTERVAL_S  # time alone makes it read again
    assert not breaker.allows(1) and reads == [0, 60, 100]
    assert breaker.figures == Figures(110, 13, 0, 0) and breaker.trip is not None
    assert "hard bounce rate 11.82% over max 5.00%" in str(breaker.trip)
    clock.now += 100
    assert not breaker.allows(1) and len(reads) == 3  # tripped for good, no more reads


def test_the_incremental_read_of_a_real_store_counts_each_event_once(tmp_path):
    with EventStore(SqliteDatabase(tmp_path / "events.sqlite3")) as store:
        def add(n: int, event: str, start: int, bounce_type: str | None = None) -> None:
            store.add([DeliveryEvent(f"{event}{start + i}", "sendgrid", "email", event, event, 1.0, 1.0,
                                     send_id=f"spring/2026-03-02/email/c{start + i}", bounce_type=bounce_type)
                       for i in range(n)])

        add(95, "delivered", 0)
        add(5, "delivered", 0)  # the same events again: stored once
        store.add([DeliveryEvent("other", "sendgrid", "email", "bounced", "bounce", 1.0, 1.0,
                                 send_id="other/2026-03-02/email/c1", bounce_type="bounce")])  # another send's
        counts, seq = store.counts_of_send_since("spring/2026-03-02/email", 0)
        assert counts == {("delivered", "", ""): 95}
        add(10, "bounced", 100, "bounce")
        more, last = store.counts_of_send_since("spring/2026-03-02/email", seq)
        assert more == {("bounced", "bounce", ""): 10} and last > seq
        assert store.counts_of_send_since("spring/2026-03-02/email", last) == ({}, last)
        breaker = Breaker("email", LIMITS, lambda after: store.counts_of_send_since("spring/2026-03-02/email",
                                                                                    after))
        assert not breaker.allows(1) and breaker.figures == Figures(105, 10, 0, 0)


def test_a_tripped_breaker_stops_the_claims_and_leaves_every_unsent_recipient_pending(tmp_path):
    """The provider's events are 'stored' as it accepts (every 5th recipient a hard bounce); the breaker trips
    at its first read with 20 outcomes in, and the sender claims nothing more."""
    events: list[tuple[str, str, str]] = []  # the send's events in store order: index + 1 is the seq

    class Speaking(ScriptedClient):
        def send(self, messages):
            ids = super().send(messages)
            events.extend(("bounced", "bounce", "") if int(m.customer_id[1:]) % 5 == 0 else ("delivered", "", "")
                          for m in messages)
            return ids

    def reader(after: int) -> tuple[dict, int]:
        fresh = events[after:]
        return {k: fresh.count(k) for k in set(fresh)}, after + len(fresh)

    client = Speaking()
    breaker = Breaker("email", BreakerLimits(min_outcomes=20), reader)  # counted as e-mail events
    with SendLedger(tmp_path / "sms.sqlite3") as ledger, ChannelLimiter(100_000, 1_000, "sms") as limiter:
        result = send_campaign(KEY, recipients(200), lambda r: {"body": "hi"}, client, limiter, ledger,
                               SendPolicy(concurrency=1), breaker=breaker)
        states = ledger.states(KEY)
    assert 20 <= len(client.sent) <= 21  # read every 2 claims (a tenth of min_outcomes): trips at 20 or 21 in
    assert result.counts["pending"] == 200 - len(client.sent) and not result.complete
    assert set(states.values()) == {"pending", "sent"}
    bounced = sum(int(c[1:]) % 5 == 0 for c in client.sent)  # sent in ledger order (c0, c1, c10, c100, ...)
    trip = result.extra["breaker"]
    assert (trip["outcomes"], trip["hard_bounces"]) == (len(client.sent), bounced)
    assert trip["reason"] == f"hard bounce rate {bounced / len(client.sent):.2%} over max 5.00%"
