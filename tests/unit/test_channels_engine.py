"""The send engine's stages on a real SQLite ledger: the one mapping of provider errors to ledger outcomes, the
claim stage (only rows this pass claimed go, each provider id on its own row), what a pass records per error,
and the result arithmetic SendResult owns (a send's shards added up)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tasks.channels.base import Message
from tasks.channels.ledger import SendKey, SendLedger
from tasks.channels.limiter import ChannelLimiter
from tasks.channels.screen import ClaimCap, Hold, Skip
from tasks.channels.send_result import SendResult
from tasks.channels.sender import ListSource, Recipient, SendJob, SendPolicy, run_pass, send_campaign, verdict_for
from tasks.errors import AuthApiError, FatalApiError, OptedOutError, RetriableApiError

KEY = SendKey("spring", "2026-03-02", "sms")
POLICY = SendPolicy(concurrency=2, max_attempts=2, retry_delay=0.01)


def recipients(n: int) -> list[Recipient]:
    return [Recipient(f"c{i}", f"+1555000{i:04d}", {}) for i in range(n)]


class ScriptedClient:
    """A provider that answers each request with the next scripted error (None: accepted, ids `m-<customer>`)."""

    provider, batch_size, idempotent = "scripted", 1, False

    def __init__(self, *answers: BaseException | None):
        self.answers = list(answers)
        self.sent: list[str] = []

    def reject_reason(self, message: Message) -> str | None:
        return None

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        self.sent += [m.customer_id for m in messages]
        return [f"m-{m.customer_id}" for m in messages]

    def close(self) -> None:
        pass


def send(tmp_path, client, people, screen=None, policy=POLICY):
    with SendLedger(tmp_path / "sms.sqlite3") as ledger, ChannelLimiter(100_000, 1_000, "sms") as limiter:
        try:
            result = send_campaign(KEY, people, lambda r: {"body": "hi"}, client, limiter, ledger, policy,
                                   screen=screen)
        finally:
            rows = {r["customer_id"]: r for r in ledger.rows(KEY)}
    return result, rows


@pytest.mark.parametrize(("error", "attempts", "idempotent", "expected"), [
    (AuthApiError("401"), 1, False, ("pending", True)),
    (OptedOutError("21610"), 1, False, ("suppressed", False)),
    (FatalApiError("400"), 1, False, ("failed", False)),
    (RetriableApiError("read timeout", maybe_delivered=True), 1, False, ("unknown", False)),
    (RetriableApiError("read timeout", maybe_delivered=True), 1, True, ("pending", False)),
    (RetriableApiError("read timeout", maybe_delivered=True), 2, True, ("unknown", False)),
    (RetriableApiError("503"), 1, False, ("pending", False)),
    (RetriableApiError("503"), 2, False, ("failed", False)),
])
def test_one_mapping_of_provider_errors_to_ledger_outcomes(error, attempts, idempotent, expected):
    verdict = verdict_for(error, attempts, POLICY, idempotent)
    assert (verdict.state, verdict.abort) == expected
    if expected == ("failed", False) and attempts == 2:
        assert verdict.reason.startswith("gave up after 2 attempt(s)")


def test_a_retry_waits_for_the_longer_of_the_policy_and_retry_after():
    policy = SendPolicy(max_attempts=3, retry_delay=10.0, backoff=True)
    assert verdict_for(RetriableApiError("429", retry_after=1.0), 2, policy, False).retry_in == 20.0
    assert verdict_for(RetriableApiError("429", retry_after=60.0), 1, policy, False).retry_in == 60.0


def test_a_pass_records_each_error_as_its_verdict_says(tmp_path):
    client = ScriptedClient(FatalApiError("400 invalid"), OptedOutError("21610"),
                            RetriableApiError("read timeout", maybe_delivered=True), RetriableApiError("503"))
    opted: list[str] = []

    class Screen:
        def check(self, people):
            return {}

        def recheck(self, people):
            return {}

        def opted_out(self, message, reason):
            opted.append(message.customer_id)

        def claim_cap(self):
            return None

    result, rows = send(tmp_path, client, recipients(5), screen=Screen())
    states = sorted(r["state"] for r in rows.values())
    # one failed, one suppressed, one unknown, and the 503 retried and then sent, as the fifth was at once
    assert states == ["failed", "sent", "sent", "suppressed", "unknown"]
    assert len(opted) == 1 and rows[opted[0]]["state"] == "suppressed"
    assert result.retries == 1 and result.complete and result.counts["sent"] == 2
    assert all(r["provider_message_id"] == f"m-{cid}" for cid, r in rows.items() if r["state"] == "sent")


def test_an_auth_error_stops_the_send_and_leaves_the_rest_pending(tmp_path):
    client = ScriptedClient(AuthApiError("401 bad key"))
    with pytest.raises(AuthApiError):
        send(tmp_path, client, recipients(4), policy=SendPolicy(concurrency=1, max_attempts=2, retry_delay=0.01))
    with SendLedger(tmp_path / "sms.sqlite3") as ledger:
        assert set(ledger.states(KEY).values()) == {"pending"} and client.sent == []


def test_the_claim_stage_sends_only_the_rows_this_pass_claimed(tmp_path):
    """A row another process claims after the screen looked (here from the screen's own re-check, the moment
    before the claim) is never sent by this pass; a capped one ends `capped`."""
    path = tmp_path / "sms.sqlite3"
    people = recipients(6)

    class RacingScreen:
        def __init__(self):
            self.other = SendLedger(path)

        def check(self, batch):
            return {}

        def recheck(self, batch):
            if any(r.customer_id == "c2" for r in batch):
                assert self.other.mark_sending(KEY, ["c2"]) == ["c2"]  # another process got there first
            return {"c5": Hold(None, "quiet hours")} if any(r.customer_id == "c5" for r in batch) else {}

        def opted_out(self, message, reason):
            raise AssertionError("no opt-out here")

        def claim_cap(self):
            return ClaimCap(limit=1, since=0.0, reason="cap {count}")  # each had a message in another send

    client = ScriptedClient()
    screen = RacingScreen()
    with SendLedger(path) as ledger, ChannelLimiter(100_000, 1_000, "sms") as limiter:
        ledger.seed(KEY, [r.customer_id for r in people])
        earlier = SendKey("winter", "2026-03-01", "sms")
        ledger.seed(earlier, [r.customer_id for r in people])
        ledger.mark_sent(earlier, [(cid, "old") for cid in ledger.mark_sending(earlier, list(ledger.states(earlier)))])
        job = SendJob(KEY, ListSource(people), lambda r: {"body": "hi"}, client, limiter, ledger,
                      SendPolicy(concurrency=1, max_hold_hours=0.0), screen=screen)
        with ledger.run_lock(KEY):
            run_pass(job)
        states = ledger.states(KEY)
    screen.other.close()
    assert client.sent == []  # the cap took every row this pass could claim
    assert states["c2"] == "sending"  # the other process's claim, untouched
    assert states["c5"] == "pending"  # held by the re-check
    assert {states[c] for c in ("c0", "c1", "c3", "c4")} == {"capped"}
    assert ledger_reason(path, "c0") == "cap 1"


def ledger_reason(path, customer_id):
    with SendLedger(path) as ledger:
        return next(r["reason"] for r in ledger.rows(KEY) if r["customer_id"] == customer_id)


def test_skips_from_the_screen_are_final_before_any_request(tmp_path):
    class SkippingScreen:
        def check(self, batch):
            return {r.customer_id: Skip("suppressed", "listed") for r in batch if r.customer_id == "c1"}

        def recheck(self, batch):
            return {}

        def opted_out(self, message, reason):
            pass

        def claim_cap(self):
            return None

    client = ScriptedClient()
    result, rows = send(tmp_path, client, recipients(3), screen=SkippingScreen())
    assert rows["c1"]["state"] == "suppressed" and "c1" not in client.sent
    assert sorted(client.sent) == ["c0", "c2"] and result.requests == 2


def test_shard_results_add_up_in_one_place():
    def part(sent: int, failed: int, duration: float, held: dict | None = None) -> SendResult:
        counts = {"pending": 0, "sending": 0, "sent": sent, "failed": failed, "unknown": 1}
        return SendResult("spring", "2026-03-02", "sms", "twilio", sent + failed + 1, counts, duration, sent, sent,
                          5.0, 10, 1, 0, 0, extra=held or {})

    parts = [part(8, 1, 2.0, {"held": 2, "held_without_time": 1, "held_until": ["2026-03-02 08:00 UTC"] * 2}),
             part(4, 0, 4.0)]
    documents = [p.as_dict() for p in parts]
    combined = SendResult.combine([SendResult.from_dict(d) for d in documents]).as_dict()
    assert combined["target"] == 15 and combined["counts"]["sent"] == 12 and combined["unknown"] == 2
    assert combined["duration_s"] == 4.0 and combined["achieved_rate"] == 3.0  # 12 sent over the longest shard
    assert combined["failed_share"] == round(1 / 15, 6) and combined["complete"] is True
    assert combined["extra"] == {"held": 2, "held_without_time": 1, "held_until": ["2026-03-02 08:00 UTC"] * 2}
    assert SendResult.from_dict(documents[1]).as_dict() == documents[1]  # a document reads back as written
