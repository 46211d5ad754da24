"""The shared sender: rate limit, concurrency, retries and the ledger, for every provider.

`send_campaign` takes the recipients of one channel send (or one shard of it) and a provider
client and brings every recipient to a final ledger state (`sent`, `failed` or `unknown`):

- Recipients are streamed: the source is read batch by batch as request slots free up; each batch
  is seeded into the ledger in bulk (unless a seeding of the same source already put it there),
  then only its still-pending rows are built and queued. Memory holds one batch, the requests
  in flight and the retry queue, never the whole send, and the first request waits for one
  batch, not for the whole ledger.

- `concurrency` threads each take a token from the channel's limiter, commit `sending`, make
  one request and commit its outcome, so the limit (not the provider's latency) sets the
  pace and a crash leaves nothing ambiguous except rows in `sending`.
- A retriable error known not to have delivered (connect failure, 429, most 5xx) puts the
  recipients back to `pending` with a due time; a dispatcher re-queues them when due, so a
  300 s retry delay never holds up other recipients. The delay is `retry_delay` (doubled
  per attempt with `backoff`), or the provider's Retry-After when that is longer.
- A retriable error that may have delivered (read timeout, connection dropped after the
  request was written, 502/504) becomes `unknown` at once: retrying it could message the
  customer twice, and none of our providers has an idempotency key (a client that has one
  sets `idempotent = True`, and then it is retried like the others).
- Permanent errors become `failed` with the reason; an auth error stops the whole send and
  leaves the remaining recipients `pending` for a later run. An opt-out answer (OptedOutError:
  Twilio 21610, FCM UNREGISTERED) makes the recipient `suppressed` and is reported to the screen.
- A `screen` (tasks/channels/screen.py), when given, is asked about each request's recipients
  (one call per batch, so its lookups are set-based) just before the request and again once the
  limiter's token is in hand: it may skip a recipient (a skipped final state: `suppressed`,
  `capped`, `duplicate_address`) or hold it (quiet hours: it stays `pending` and is queued again
  for when it may go, like a retry, unless that is more than `max_hold_hours` after the start;
  such recipients stay pending for the next run).
- Time comes from a `clock` (tasks/channels/screen.py), so tests control it.
- A `breaker` (tasks/channels/breaker.py), when given, is asked in the claim stage before each claim: once the
  send's own delivery events show too many hard bounces, complaints or filtered SMS it trips, the pass claims
  nothing more (the requests in flight finish; every unsent recipient stays `pending`), and the result's
  `extra["breaker"]` holds the figures for the caller to record the hold.

A pass is named stages, each a method: the feed seeds and reads the source (`_feed`), and each request
is `_screen` (the compliance screen), `_prepare` (render, the provider's own rejections), `_claim` (the
limiter's token, the screen again, the ledger claim with the frequency cap: the one place that decides
whether recipients may go, where the breaker is asked), `_send` (the request)
and `_record` (the outcome into the ledger; `verdict_for` is the one mapping of a provider error to a
ledger outcome). What a pass needs is one `SendJob`, built once by `send_campaign`.

Reads no luigi.cfg section: tasks/campaign/wiring.py passes what the config says.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from tasks.channels.base import Message, ProviderClient
from tasks.channels.breaker import Breaker
from tasks.channels.ledger import (
    CAPPED,
    FAILED,
    FINAL_STATES,
    PENDING,
    SENDING,
    SENT,
    SUPPRESSED,
    UNKNOWN,
    SeedMark,
    SendKey,
    SendLedger,
    Shard,
)
from tasks.channels.screen import SYSTEM_CLOCK, Clock, Hold, Screen, Skip
from tasks.channels.send_result import Progress, SendResult, fmt_counts, hold_extra
from tasks.errors import AuthApiError, FatalApiError, OptedOutError, RetriableApiError

if TYPE_CHECKING:  # pyrate_limiter is loaded where a limiter is made, not by `import tasks` or `status`
    from tasks.channels.limiter import ChannelLimiter

__all__ = [
    "WHOLE_SEND", "ListSource", "Progress", "Recipient", "RecipientSource", "SendJob", "SendPolicy", "SendResult",
    "SourceBatch", "Verdict", "run_pass", "send_campaign", "verdict_for",
]

logger = logging.getLogger(__name__)

MAX_LOGGED_FAILURES = 20
WHOLE_SEND = Shard()  # a send not split into shards
RATE_WINDOW_S = 5.0  # the progress rate is over this many recent seconds


@dataclass(frozen=True)
class Recipient:
    """One customer to message: `address` is PII (mask it in logs); `fields` feed the template."""

    customer_id: str
    address: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class SendPolicy:
    """How to send: concurrency, retries, and how often to report progress."""

    concurrency: int = 8
    max_attempts: int = 2
    retry_delay: float = 300.0
    backoff: bool = False
    resend_unknown: bool = False
    progress_interval: float = 2.0
    log_interval: float = 5.0
    max_hold_hours: float = 12.0  # recipients held for longer than this after the start wait for the next run

    def delay_after(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt after `attempts` failed ones."""
        delay = self.retry_delay * (2 ** (attempts - 1) if self.backoff else 1)
        return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class SourceBatch:
    """One batch of a source: its customer ids, and how to build the recipients among some of them (only the
    still-pending ones are ever built, so a re-run over a mostly finished send stays cheap)."""

    ids: list[str]
    build: Callable[[set[str]], list[Recipient]]


class RecipientSource(Protocol):
    """Where a send's recipients come from, read in batches so memory never holds them all.

    `source` names the exact input (file content, filters, shard): seeding records how many of its
    batches are in the ledger, so a re-run skips them. None: seed every batch on every run.
    """

    source: str | None

    def batches(self) -> Iterator[SourceBatch]:
        """The recipients in batches, the same batches in the same order on every call."""
        ...


class ListSource:
    """Recipients already in memory (tests, small sends)."""

    def __init__(self, recipients: Iterable[Recipient], batch: int = 10_000) -> None:
        self.source: str | None = None
        self.recipients = list(recipients)
        self.batch = batch

    def batches(self) -> Iterator[SourceBatch]:
        for start in range(0, len(self.recipients), self.batch):
            chunk = self.recipients[start:start + self.batch]
            yield SourceBatch([r.customer_id for r in chunk], functools.partial(_among, chunk))


def _among(recipients: list[Recipient], keep: set[str]) -> list[Recipient]:
    return [r for r in recipients if r.customer_id in keep]


def _hidden(address: str) -> str:
    """The default mask: no part of an address in the log."""
    return "***"


@dataclass(frozen=True)
class SendJob:
    """Everything one pass of the sender needs, built once: the send (or shard) and its recipients, how to
    render a message, the provider, the limiter, the ledger, the policy, and the optional screen, progress
    callback, address mask, clock and breaker."""

    key: SendKey
    source: RecipientSource
    render: Callable[[Recipient], dict[str, str]]
    client: ProviderClient
    limiter: ChannelLimiter
    ledger: SendLedger
    policy: SendPolicy
    progress: Callable[[Progress], None] | None = None
    mask: Callable[[str], str] = _hidden
    shard: Shard = WHOLE_SEND
    screen: Screen | None = None
    clock: Clock = SYSTEM_CLOCK
    breaker: Breaker | None = None

    @property
    def label(self) -> str:
        """`sms campaign 'demo' 2026-03-02 shard 1/3` for log lines."""
        shard = f" {self.shard}" if self.shard.count > 1 else ""
        return f"{self.key.channel} campaign {self.key.campaign!r} {self.key.date}{shard}"


def send_campaign(
    key: SendKey,
    recipients: RecipientSource | Sequence[Recipient],
    render: Callable[[Recipient], dict[str, str]],
    client: ProviderClient,
    limiter: ChannelLimiter,
    ledger: SendLedger,
    policy: SendPolicy,
    progress: Callable[[Progress], None] | None = None,
    mask: Callable[[str], str] = _hidden,
    shard: Shard = WHOLE_SEND,
    screen: Screen | None = None,
    clock: Clock = SYSTEM_CLOCK,
    breaker: Breaker | None = None,
) -> SendResult:
    """Send to every recipient of `shard` not final in the ledger yet (until the breaker, if any, trips); returns
    the counts of the shard."""
    source = recipients if not isinstance(recipients, Sequence) else ListSource(recipients)
    job = SendJob(key, source, render, client, limiter, ledger, policy, progress, mask, shard, screen, clock,
                  breaker)
    with ledger.run_lock(key, shard):
        return run_pass(job)


def run_pass(job: SendJob) -> SendResult:
    """One pass over the job's pending recipients. The caller holds the send's run lock (send_campaign does):
    without it a second process would take the first one's `sending` rows for a dead run's."""
    started = job.clock.monotonic()
    return _Run(job, _Resume.read(job), started).run()


# ---------------------------------------------------------------- what a failed request means


@dataclass(frozen=True)
class Verdict:
    """What a request that raised means for its recipients' ledger rows.

    `state`: PENDING (to retry after `retry_in` seconds, or, with `abort`, left for a later run), FAILED,
    UNKNOWN (may have been delivered) or SUPPRESSED (the provider says the recipient opted out).
    """

    state: str
    reason: str
    retry_in: float = 0.0
    abort: bool = False  # stop the whole send (the credentials were refused)
    log_failures: bool = False  # log the first recipients of the batch (a permanent error of the request)


def verdict_for(exc: FatalApiError | RetriableApiError, attempts: int, policy: SendPolicy,
                idempotent: bool) -> Verdict:
    """The one mapping of a provider error to a ledger outcome, after `attempts` attempts of the request.

    An auth error stops the send (the rows wait for a later run); an opt-out suppresses; any other
    permanent error fails. A retriable error that may have delivered is `unknown` unless the provider
    is idempotent; one that did not is retried until `max_attempts`, then failed (or unknown).
    """
    if isinstance(exc, AuthApiError):
        return Verdict(PENDING, str(exc), abort=True)
    if isinstance(exc, OptedOutError):
        return Verdict(SUPPRESSED, str(exc))
    if isinstance(exc, FatalApiError):
        return Verdict(FAILED, str(exc), log_failures=True)
    if exc.maybe_delivered and not idempotent:
        return Verdict(UNKNOWN, f"{exc}: may have been delivered, not retried")
    if attempts >= policy.max_attempts:
        if exc.maybe_delivered:
            return Verdict(UNKNOWN, f"{exc}: may have been delivered; {attempts} attempts")
        return Verdict(FAILED, f"gave up after {attempts} attempt(s): {exc}")
    return Verdict(PENDING, str(exc), retry_in=policy.delay_after(attempts, exc.retry_after))


# ---------------------------------------------------------------- one pass


@dataclass(frozen=True)
class _Resume:
    """What the ledger says as a pass starts: how much of the source is seeded already, what a dead run left in
    flight (now unknown), which unknowns are re-sent once, and the counts by state."""

    skip_batches: int  # source batches already seeded from this very source
    seeded_all: bool
    recovered: int
    reopened: int
    initial: collections.Counter[str]

    @classmethod
    def read(cls, job: SendJob) -> _Resume:
        key, ledger, shard = job.key, job.ledger, job.shard
        mark = ledger.seeding(key, shard)
        named = job.source.source
        same = mark if mark is not None and named is not None and mark.source == named else None
        recovered = ledger.recover_in_flight(key, shard.index)
        reopened = ledger.reopen_unknown(key, shard.index) if job.policy.resend_unknown else 0
        if recovered:
            logger.warning("%s: %d recipient(s) were in flight when a previous run stopped: now unknown, "
                           "not re-sent%s", job.label, recovered,
                           "" if job.policy.resend_unknown else " (resend_unknown = false)")
        if reopened:
            logger.warning("%s: re-sending %d unknown recipient(s) once (resend_unknown = true)", job.label, reopened)
        return cls(same.batches if same else 0, bool(same and same.complete), recovered, reopened,
                   collections.Counter(ledger.counts(key, shard.index)))


@dataclass
class _Batch:
    recipients: list[Recipient]
    attempts: int


@dataclass(frozen=True)
class _Claim:
    """The messages of one request whose ledger rows this pass claimed (`sending`): only these may go."""

    batch: _Batch
    messages: list[Message]

    @property
    def ids(self) -> list[str]:
        return [m.customer_id for m in self.messages]

    @property
    def attempts(self) -> int:
        """Attempts of these recipients, this one included."""
        return self.batch.attempts + 1


@dataclass
class _Outcome:
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    requests: int = 0
    retry_in: float | None = None
    retry: list[Recipient] = field(default_factory=list)
    abort: BaseException | None = None
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    held: list[tuple[Recipient, float | None]] = field(default_factory=list)


class _Run:
    """One pass of the sender over a send's (or a shard's) pending recipients, streamed in batches."""

    def __init__(self, job: SendJob, resume: _Resume, started: float) -> None:
        self.job = job
        self.resume = resume
        self.started = started  # monotonic
        self.horizon = job.clock.time() + job.policy.max_hold_hours * 3600  # holds past this wait for a later run
        self.aborting = threading.Event()
        self.abort: BaseException | None = None
        self.logged_failures = 0
        self.log_lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.retries = 0
        self.recent: collections.deque[tuple[float, int]] = collections.deque()
        self.added = 0  # ledger rows this pass seeded
        self.delayed: list[tuple[float, int, _Batch]] = []  # (monotonic due, tie-breaker, batch): retries, holds
        self.held: dict[str, float | None] = {}  # customer_id -> when it may go (None: no known time)
        self.next_progress = started + job.policy.progress_interval
        self.next_log = started + job.policy.log_interval

    def run(self) -> SendResult:
        job, initial = self.job, self.resume.initial
        logger.info("%s via %s: %d target, %d to send (%s), limit %s, concurrency %d", job.label,
                    job.client.provider, sum(initial.values()), initial[PENDING], fmt_counts(initial),
                    job.limiter, job.policy.concurrency)
        if initial[PENDING] or not self.resume.seeded_all:  # seeding goes with sending: one batch, then requests
            self._dispatch(self._feed())
        return self._result(job.clock.monotonic() - self.started)

    def _result(self, duration: float) -> SendResult:
        job = self.job
        final = job.ledger.counts(job.key, job.shard.index)
        counts = {state: final.get(state, 0) for state in (PENDING, SENDING, *FINAL_STATES)}
        result = SendResult(
            campaign=job.key.campaign, date=job.key.date, channel=job.key.channel, provider=job.client.provider,
            target=sum(final.values()), counts=counts, duration_s=duration,
            messages_sent_this_run=self.counts[SENT], requests=self.requests, configured_rate=job.limiter.rate,
            burst=job.limiter.burst, retries=self.retries, recovered_unknown=self.resume.recovered,
            reopened_unknown=self.resume.reopened,
            extra={"shard": job.shard.index, "shards": job.shard.count, "seeded_this_run": self.added,
                   **hold_extra(self.held)},  # held: still pending past max_hold_hours, or with no known time
        )
        if job.breaker is not None and job.breaker.trip is not None:
            result.extra["breaker"] = job.breaker.trip.as_dict()
        logger.info("%s done in %.1f s: %s; %.1f msg/s (%.1f req/s, limit %g/s)", job.label, duration,
                    fmt_counts(counts), result.achieved_rate, result.achieved_request_rate, job.limiter.rate)
        return result

    # ------------------------------------------------------------ the feed

    def _feed(self) -> Iterator[_Batch]:
        """Request-sized batches of the recipients still pending, read batch by batch from the source.

        Each source batch not seeded yet is seeded first (one transaction, which also records how far
        seeding got, so a restart after a crash skips what is in). Rows whose retry is not due yet go
        to the delayed queue instead.
        """
        job, resume = self.job, self.resume
        named, number, total = job.source.source, 0, 0
        for number, batch in enumerate(job.source.batches(), 1):
            if self.aborting.is_set():
                return
            total += len(batch.ids)
            if not resume.seeded_all and number > resume.skip_batches:
                mark = None if named is None else SeedMark(named, number, total, complete=False)
                self.added += job.ledger.seed(job.key, batch.ids, job.shard.index, mark, job.shard.count)
            yield from self._requests(batch)
        if named is not None and not resume.seeded_all:
            job.ledger.finish_seeding(job.key, job.shard, SeedMark(named, number, total, complete=True))

    def _requests(self, batch: SourceBatch) -> Iterator[_Batch]:
        """The pending recipients of one source batch, grouped by attempts and due time: up to the provider's
        batch_size per request, no address twice in one request."""
        job = self.job
        pending = job.ledger.pending_among(job.key, batch.ids)
        if not pending:
            return
        by_id = {r.customer_id: r for r in batch.build({row.customer_id for row in pending})}
        pending.sort(key=lambda row: (row.attempts, row.next_attempt_at or 0.0, row.customer_id))
        now_wall, now_mono = job.clock.time(), job.clock.monotonic()
        for (attempts, due), rows in itertools.groupby(pending, key=lambda r: (r.attempts, r.next_attempt_at)):
            group: list[Recipient] = []
            seen: set[str] = set()
            for row in rows:
                recipient = by_id[row.customer_id]
                if len(group) >= job.client.batch_size or recipient.address in seen:
                    yield from self._due(_Batch(group, attempts), due, now_wall, now_mono)
                    group, seen = [], set()
                group.append(recipient)
                seen.add(recipient.address)
            if group:
                yield from self._due(_Batch(group, attempts), due, now_wall, now_mono)

    def _due(self, batch: _Batch, due_wall: float | None, now_wall: float, now_mono: float) -> Iterator[_Batch]:
        if due_wall is None or due_wall <= now_wall:
            yield batch
        elif due_wall > self.horizon:  # held past max_hold_hours by an earlier run: left for a later one
            self.held.update((r.customer_id, due_wall) for r in batch.recipients)
        else:
            heapq.heappush(self.delayed, (now_mono + due_wall - now_wall, id(batch), batch))

    # ------------------------------------------------------------ the dispatcher

    def _dispatch(self, feed: Iterator[_Batch]) -> None:
        """Keep `concurrency` requests in flight, pulling batches from `feed` only as slots free up (so
        memory holds the in-flight and retry-queued recipients, never the whole send)."""
        job = self.job
        fed_all = False
        with ThreadPoolExecutor(max_workers=job.policy.concurrency,
                                thread_name_prefix=f"send-{job.key.channel}") as pool:
            running: dict[Future[_Outcome], _Batch] = {}
            while True:  # `aborting`: an auth error, or the breaker tripped; either way nothing more is claimed
                if not self.aborting.is_set():
                    fed_all = self._fill(pool, running, feed, fed_all)
                if not running and (self.aborting.is_set() or (fed_all and not self.delayed)):
                    break
                for future in self._wait(running):
                    # _attempt catches provider errors; anything else is a bug and ends the pass
                    self._settle(running.pop(future), future.result())
                self._tick()
            self._report(job.clock.monotonic(), log=False)
        if self.abort is not None:
            raise self.abort

    def _fill(self, pool: ThreadPoolExecutor, running: dict[Future[_Outcome], _Batch], feed: Iterator[_Batch],
              fed_all: bool) -> bool:
        """Start requests until `concurrency` are in flight: due retries and holds first, then the feed's next
        batches; returns whether the feed is exhausted."""
        now = self.job.clock.monotonic()
        while len(running) < self.job.policy.concurrency:
            if self.delayed and self.delayed[0][0] <= now:
                batch = heapq.heappop(self.delayed)[2]
            elif not fed_all:
                next_batch = next(feed, None)
                if next_batch is None:
                    fed_all = True
                    continue
                batch = next_batch
            else:
                break
            running[pool.submit(self._attempt, batch)] = batch
        return fed_all

    def _wait(self, running: dict[Future[_Outcome], _Batch]) -> set[Future[_Outcome]]:
        """The requests done by the next progress report or the next delayed batch's due time (sleeping until
        then when nothing is in flight: only retries and holds are left)."""
        clock = self.job.clock
        wake = min(self.next_progress, self.delayed[0][0] if self.delayed else self.next_progress)
        if not running:
            clock.sleep(wake - clock.monotonic())
            return set()
        done, _ = wait(running, timeout=max(0.01, wake - clock.monotonic()), return_when=FIRST_COMPLETED)
        return done

    def _settle(self, batch: _Batch, outcome: _Outcome) -> None:
        """Take in one request's outcome: the counts, holds to queue, an abort, a retry to queue."""
        self._count(outcome, batch)
        self._requeue_held(outcome, batch)
        if outcome.abort is not None and self.abort is None:
            self.abort = outcome.abort
            self.aborting.set()
        if outcome.retry_in is not None:
            self.retries += 1
            retry = _Batch(outcome.retry, batch.attempts + 1)
            heapq.heappush(self.delayed, (self.job.clock.monotonic() + outcome.retry_in, id(retry), retry))

    def _tick(self) -> None:
        """Report progress when it is due (and log it, less often)."""
        now = self.job.clock.monotonic()
        if now >= self.next_progress:
            self.next_progress = now + self.job.policy.progress_interval
            self._report(now, log=now >= self.next_log)
            if now >= self.next_log:
                self.next_log = now + self.job.policy.log_interval

    def _requeue_held(self, outcome: _Outcome, batch: _Batch) -> None:
        """Queue the recipients a screen held for when they may go (within max_hold_hours), like a retry."""
        now_wall, now_mono = self.job.clock.time(), self.job.clock.monotonic()
        for recipient, until in outcome.held:
            self.held[recipient.customer_id] = until
            if until is not None and until <= self.horizon:
                later = _Batch([recipient], batch.attempts)
                heapq.heappush(self.delayed, (now_mono + max(0.0, until - now_wall), id(later), later))

    # ------------------------------------------------------------ one request: the stages

    def _attempt(self, batch: _Batch) -> _Outcome:
        """One request for one batch (runs in a pool thread): screen, prepare, claim, send, record."""
        outcome = _Outcome()
        messages = self._prepare(self._screen(batch.recipients, outcome), outcome)
        claim = self._claim(batch, messages, outcome) if messages else None
        if claim is not None:
            outcome.requests = 1
            self._record(claim, self._send(claim), outcome)
        return outcome

    def _screen(self, recipients: Sequence[Recipient], outcome: _Outcome, again: bool = False) -> list[Recipient]:
        """The recipients the screen lets go now (`again`: its re-check with the token in hand); the others are
        skipped (final) or held (pending). One screen call, and one ledger statement per distinct verdict."""
        job = self.job
        if job.screen is None or not recipients:
            return list(recipients)
        verdicts = (job.screen.recheck if again else job.screen.check)(recipients)
        if not verdicts:
            return list(recipients)
        grouped: dict[Skip | Hold, list[Recipient]] = collections.defaultdict(list)
        for recipient in recipients:
            verdict = verdicts.get(recipient.customer_id)
            if verdict is not None:
                grouped[verdict].append(recipient)
        for verdict, group in grouped.items():
            ids = [r.customer_id for r in group]
            if isinstance(verdict, Skip):
                moved = set(job.ledger.mark_skipped(job.key, ids, verdict.state, verdict.reason))
                outcome.skipped[verdict.state] += len(moved)
            else:  # the row keeps the time for a later run; without one (None) a later run screens it again
                job.ledger.hold(job.key, ids, verdict.reason, verdict.until)
                outcome.held += [(r, verdict.until) for r in group]
        return [r for r in recipients if r.customer_id not in verdicts]

    def _prepare(self, recipients: Sequence[Recipient], outcome: _Outcome) -> list[Message]:
        """Each recipient's message; one the template cannot render or the provider would refuse fails at once
        (no request)."""
        messages: list[Message] = []
        for recipient in recipients:
            message = self._message(recipient)
            if isinstance(message, Message):
                messages.append(message)
                continue
            self.job.ledger.mark_failed(self.job.key, [recipient.customer_id], message)
            self._log_failure(recipient, message)
            outcome.failed += 1
        return messages

    def _message(self, recipient: Recipient) -> Message | str:
        """The recipient's message, or why there is none."""
        job = self.job
        try:
            content = job.render(recipient)
        except FatalApiError as exc:
            return str(exc)
        message = Message(recipient.customer_id, recipient.address, job.key.send_id(recipient.customer_id), content)
        return job.client.reject_reason(message) or message

    def _claim(self, batch: _Batch, messages: list[Message], outcome: _Outcome) -> _Claim | None:
        """The one place that decides which prepared messages go: with the limiter's token in hand the screen
        looks again (a suppression added meanwhile counts), then the ledger claims the rows (`pending` ->
        `sending`) with the frequency cap counted again, the customers locked: another campaign may have
        claimed one since the screen's check. None when nothing may go (or the send is stopping)."""
        job = self.job
        job.limiter.acquire()
        if self.aborting.is_set():
            return None  # the rows stay pending for the next run
        by_id = {r.customer_id: r for r in batch.recipients}
        still = {r.customer_id for r in self._screen([by_id[m.customer_id] for m in messages], outcome, again=True)}
        messages = [m for m in messages if m.customer_id in still]
        if not messages or not self._breaker_allows(len(messages)):
            return None
        cap = job.screen.claim_cap() if job.screen is not None else None
        ids, capped = job.ledger.claim(job.key, [m.customer_id for m in messages], cap)
        outcome.skipped[CAPPED] += len(capped)
        taken = len(messages) - len(ids) - len(capped)
        if taken:  # another process claimed (or finished) these first: never send them
            logger.warning("%s: %d recipient(s) were claimed by another process; not sent by this one",
                           job.label, taken)
        mine = set(ids)
        claimed = [m for m in messages if m.customer_id in mine]
        return _Claim(batch, claimed) if claimed else None

    def _breaker_allows(self, recipients: int) -> bool:
        """Whether the breaker (if any) lets `recipients` more be claimed; when it trips, the pass stops claiming
        (the rows stay pending) and says why, once."""
        breaker = self.job.breaker
        if breaker is None or breaker.allows(recipients):
            return True
        with self.log_lock:
            if not self.aborting.is_set():
                self.aborting.set()
                logger.error("%s: breaker tripped, no more recipients claimed: %s", self.job.label, breaker.trip)
        return False

    def _send(self, claim: _Claim) -> list[str | None] | FatalApiError | RetriableApiError:
        """The request: the provider's message ids, or the provider error it answered. Anything else (a bug, an
        interrupt) leaves the rows `unknown`, since the provider may have the message, and is raised."""
        try:
            return self.job.client.send(claim.messages)
        except (FatalApiError, RetriableApiError) as exc:
            return exc
        except BaseException as exc:
            self.job.ledger.mark_unknown(self.job.key, claim.ids, f"unexpected {type(exc).__name__} during the request")
            raise

    def _record(self, claim: _Claim, answer: list[str | None] | FatalApiError | RetriableApiError,
                outcome: _Outcome) -> None:
        """The request's outcome into the ledger (a provider error as `verdict_for` maps it) and `outcome`."""
        job, ids = self.job, claim.ids
        if isinstance(answer, list):
            job.ledger.mark_sent(job.key, list(zip(ids, answer, strict=True)))
            outcome.sent += len(ids)
            return
        verdict = verdict_for(answer, claim.attempts, job.policy, job.client.idempotent)
        if verdict.state == PENDING:
            job.ledger.mark_retry(job.key, ids, verdict.reason, job.clock.time() + verdict.retry_in)
            if verdict.abort:
                outcome.abort = answer
            else:
                claimed = set(ids)
                outcome.retry_in = verdict.retry_in
                outcome.retry = [r for r in claim.batch.recipients if r.customer_id in claimed]
        elif verdict.state == SUPPRESSED:
            outcome.skipped[SUPPRESSED] += len(job.ledger.mark_skipped(job.key, ids, SUPPRESSED, verdict.reason))
            if job.screen is not None:
                for message in claim.messages:
                    job.screen.opted_out(message, verdict.reason)
        elif verdict.state == UNKNOWN:
            job.ledger.mark_unknown(job.key, ids, verdict.reason)
            outcome.unknown += len(ids)
        else:
            job.ledger.mark_failed(job.key, ids, verdict.reason)
            outcome.failed += len(ids)
            if verdict.log_failures:
                for recipient in claim.batch.recipients[:3]:
                    self._log_failure(recipient, verdict.reason)

    # ------------------------------------------------------------ accounting

    def _log_failure(self, recipient: Recipient, reason: str) -> None:
        with self.log_lock:
            self.logged_failures += 1
            if self.logged_failures <= MAX_LOGGED_FAILURES:
                logger.warning("%s: customer %s (%s) failed: %s", self.job.label, recipient.customer_id,
                               self.job.mask(recipient.address), reason)
            elif self.logged_failures == MAX_LOGGED_FAILURES + 1:
                logger.warning("%s: more failures; not logging each one (see the ledger)", self.job.label)

    def _count(self, outcome: _Outcome, batch: _Batch) -> None:
        self.counts[SENT] += outcome.sent
        self.counts[FAILED] += outcome.failed
        self.counts[UNKNOWN] += outcome.unknown
        self.counts.update(outcome.skipped)
        self.requests += outcome.requests
        if outcome.sent:
            self.recent.append((self.job.clock.monotonic(), outcome.sent))
        if self.held:
            held_now = {r.customer_id for r, _ in outcome.held}
            for recipient in batch.recipients:  # held before, not any more: it went, or was skipped
                if recipient.customer_id not in held_now:
                    self.held.pop(recipient.customer_id, None)

    def _report(self, now: float, log: bool) -> None:
        job = self.job
        while self.recent and self.recent[0][0] < now - RATE_WINDOW_S:
            self.recent.popleft()
        span = min(RATE_WINDOW_S, max(now - self.started, 1e-3))
        rate = sum(n for _, n in self.recent) / span
        target = sum(self.resume.initial.values()) + self.added
        done = {state: self.resume.initial[state] + self.counts[state] for state in FINAL_STATES}
        times = [t for t in self.held.values() if t is not None]
        snapshot = Progress(target, done, target - sum(done.values()), rate, now - self.started, len(self.held),
                            (min(times), max(times)) if times else None)
        if log:
            logger.info("%s: %s", job.label, snapshot)
        if job.progress is not None:
            try:
                job.progress(snapshot)
            except Exception:  # a progress display must never stop a send
                logger.warning("%s: progress callback failed", job.label, exc_info=True)
