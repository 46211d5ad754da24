"""The shared sender: rate limit, concurrency, retries and the ledger, for every provider.

`send_campaign` takes the recipients of one channel send and a provider client and brings
every recipient to a final ledger state (`sent`, `failed` or `unknown`):

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
- A `screen` (tasks/channels/screen.py), when given, is asked about every recipient just before
  its request and again once the limiter's token is in hand: it may skip it (a skipped final
  state: `suppressed`, `capped`, `duplicate_address`) or hold it (quiet hours: it stays
  `pending` and is queued again for when it may go, like a retry, unless that is more than
  `max_hold_hours` after the start; such recipients stay pending for the next run).
- Time comes from a `clock` (tasks/channels/screen.py), so tests control it.

Reads no luigi.cfg section: tasks/campaign/sends.py builds the policy from the config.
"""

from __future__ import annotations

import collections
import datetime
import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field

from tasks.channels.base import Message, ProviderClient
from tasks.channels.ledger import (
    FAILED,
    FINAL_STATES,
    PENDING,
    SENDING,
    SENT,
    SKIPPED_STATES,
    SUPPRESSED,
    UNKNOWN,
    SendKey,
    SendLedger,
)
from tasks.channels.limiter import ChannelLimiter
from tasks.channels.screen import SYSTEM_CLOCK, Clock, Hold, Screen, Skip
from tasks.errors import AuthApiError, FatalApiError, OptedOutError, RetriableApiError

logger = logging.getLogger(__name__)

MAX_LOGGED_FAILURES = 20


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
class Progress:
    """A snapshot for the Luigi shell: counts by final state, the recent message rate, and the
    recipients held for quiet hours (with the earliest and latest time they may go, epoch s)."""

    target: int
    counts: Mapping[str, int]
    remaining: int
    rate: float
    elapsed: float
    held: int = 0
    held_until: tuple[float, float] | None = None

    @property
    def sent(self) -> int:
        return self.counts.get(SENT, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(FAILED, 0)

    @property
    def unknown(self) -> int:
        return self.counts.get(UNKNOWN, 0)

    @property
    def done_fraction(self) -> float:
        return 1.0 if self.target == 0 else (self.target - self.remaining) / self.target

    def __str__(self) -> str:
        skipped = "".join(f", {self.counts[s]} {s}" for s in SKIPPED_STATES if self.counts.get(s))
        text = (
            f"{self.sent} sent, {self.failed} failed, {self.unknown} unknown{skipped}, {self.remaining} remaining "
            f"of {self.target}; {self.rate:.1f} msg/s"
        )
        if self.held:
            text += f"; {self.held} held for quiet hours"
            if self.held_until:
                first, last = (_utc(t) for t in self.held_until)
                text += f" until {first}" if first == last else f" until {first} to {last}"
        return text


@dataclass
class SendResult:
    """The outcome of one channel send (the Luigi task writes it as its result JSON)."""

    campaign: str
    date: str
    channel: str
    provider: str
    target: int
    counts: dict[str, int]
    duration_s: float
    messages_sent_this_run: int
    requests: int
    achieved_rate: float
    achieved_request_rate: float
    configured_rate: float
    burst: int
    retries: int
    recovered_unknown: int
    reopened_unknown: int
    complete: bool
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def failed_share(self) -> float:
        return 0.0 if self.target == 0 else self.counts.get(FAILED, 0) / self.target

    def as_dict(self) -> dict[str, object]:
        payload = asdict(self)
        payload["unknown"] = self.counts.get(UNKNOWN, 0)
        payload["failed_share"] = round(self.failed_share, 6)
        return payload


@dataclass
class _Batch:
    recipients: list[Recipient]
    attempts: int


@dataclass
class _Outcome:
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    requests: int = 0
    retry_in: float | None = None
    abort: BaseException | None = None
    skipped: collections.Counter = field(default_factory=collections.Counter)
    held: list[tuple[Recipient, float | None]] = field(default_factory=list)


def send_campaign(
    key: SendKey,
    recipients: Sequence[Recipient],
    render: Callable[[Recipient], dict[str, str]],
    client: ProviderClient,
    limiter: ChannelLimiter,
    ledger: SendLedger,
    policy: SendPolicy,
    progress: Callable[[Progress], None] | None = None,
    mask: Callable[[str], str] = lambda _: "***",
    screen: Screen | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> SendResult:
    """Send to every recipient not final in the ledger yet; returns the counts over all `recipients`."""
    with ledger.run_lock(key):
        return _Run(key, recipients, render, client, limiter, ledger, policy, progress, mask, screen, clock).run()


class _Run:
    """One pass of the sender over a send's pending recipients."""

    def __init__(self, key, recipients, render, client, limiter, ledger, policy, progress, mask, screen=None,
                 clock=SYSTEM_CLOCK):
        self.key: SendKey = key
        self.recipients: Sequence[Recipient] = recipients
        self.render = render
        self.client: ProviderClient = client
        self.limiter: ChannelLimiter = limiter
        self.ledger: SendLedger = ledger
        self.policy: SendPolicy = policy
        self.progress = progress
        self.mask = mask
        self.aborting = threading.Event()
        self.logged_failures = 0
        self.log_lock = threading.Lock()
        self.counts = collections.Counter()
        self.requests = 0
        self.retries = 0
        self.recent: collections.deque[tuple[float, int]] = collections.deque()
        self.screen: Screen | None = screen
        self.clock: Clock = clock
        self.held: dict[str, float | None] = {}  # customer_id -> when it may go (None: no known time)
        self.horizon = clock.time() + policy.max_hold_hours * 3600  # holds past this wait for the next run

    def run(self) -> SendResult:
        start = self.clock.monotonic()
        key, ledger = self.key, self.ledger
        by_id = {r.customer_id: r for r in self.recipients}
        known = ledger.states(key)
        # on a re-run only new recipients are inserted (100,000 INSERT OR IGNOREs cost ~0.5 s)
        ledger.seed(key, [cid for cid in by_id if cid not in known])
        recovered = ledger.recover_in_flight(key)
        reopened = ledger.reopen_unknown(key) if self.policy.resend_unknown else 0
        if recovered:
            logger.warning("%s: %d recipient(s) were in flight when a previous run stopped: now unknown, "
                           "not re-sent%s", self._label(), recovered,
                           "" if self.policy.resend_unknown else " (resend_unknown = false)")
        if reopened:
            logger.warning("%s: re-sending %d unknown recipient(s) once (resend_unknown = true)",
                           self._label(), reopened)
        states = ledger.states(key)
        self.initial = collections.Counter(states[cid] for cid in by_id)
        pending = [row for row in ledger.pending(key) if row.customer_id in by_id]
        logger.info("%s via %s: %d target, %d to send (%s), limit %s, concurrency %d", self._label(),
                    self.client.provider, len(by_id), len(pending), _fmt_counts(self.initial), self.limiter,
                    self.policy.concurrency)
        ready, delayed = self._plan(pending, by_id)
        self._dispatch(ready, delayed, start)
        duration = self.clock.monotonic() - start
        final_states = ledger.states(key)  # once: a query per recipient made this quadratic
        final = collections.Counter(final_states[cid] for cid in by_id)
        counts = {state: final.get(state, 0) for state in (PENDING, SENDING, *FINAL_STATES)}
        sent_now = self.counts[SENT]
        result = SendResult(
            campaign=key.campaign, date=key.date, channel=key.channel, provider=self.client.provider,
            target=len(by_id), counts=counts, duration_s=round(duration, 3), messages_sent_this_run=sent_now,
            requests=self.requests, achieved_rate=round(sent_now / duration, 3) if duration > 0 else 0.0,
            achieved_request_rate=round(self.requests / duration, 3) if duration > 0 else 0.0,
            configured_rate=self.limiter.rate, burst=self.limiter.burst, retries=self.retries,
            recovered_unknown=recovered, reopened_unknown=reopened,
            complete=counts[PENDING] == 0 and counts[SENDING] == 0,
        )
        held = {cid: until for cid, until in self.held.items() if final_states.get(cid) == PENDING}
        if held:
            times = [t for t in held.values() if t is not None]
            result.extra["held"] = len(held)
            result.extra["held_without_time"] = len(held) - len(times)
            result.extra["held_until"] = [_utc(min(times)), _utc(max(times))] if times else None
        logger.info("%s done in %.1f s: %s; %.1f msg/s (%.1f req/s, limit %g/s)", self._label(), duration,
                    _fmt_counts(counts), result.achieved_rate, result.achieved_request_rate, self.limiter.rate)
        return result

    def _label(self) -> str:
        return f"{self.key.channel} campaign {self.key.campaign!r} {self.key.date}"

    def _plan(self, pending, by_id) -> tuple[collections.deque[_Batch], list]:
        """Batches of up to batch_size (no address twice in one request); rows with a due time wait."""
        ready: collections.deque[_Batch] = collections.deque()
        delayed: list = []
        now_wall, now_mono = self.clock.time(), self.clock.monotonic()
        pending = sorted(pending, key=lambda row: (row.attempts, row.next_attempt_at or 0.0, row.customer_id))
        groups = itertools.groupby(pending, key=lambda row: (row.attempts, row.next_attempt_at))
        for (attempts, due), rows in groups:
            batch: list[Recipient] = []
            seen: set[str] = set()
            for row in rows:
                recipient = by_id[row.customer_id]
                if len(batch) >= self.client.batch_size or recipient.address in seen:
                    self._queue(ready, delayed, _Batch(batch, attempts), due, now_wall, now_mono)
                    batch, seen = [], set()
                batch.append(recipient)
                seen.add(recipient.address)
            if batch:
                self._queue(ready, delayed, _Batch(batch, attempts), due, now_wall, now_mono)
        return ready, delayed

    def _queue(self, ready, delayed, batch: _Batch, due_wall: float | None, now_wall: float, now_mono: float):
        if due_wall is None or due_wall <= now_wall:
            ready.append(batch)
        elif due_wall > self.horizon:  # held past max_hold_hours by an earlier run: left for a later one
            self.held.update((r.customer_id, due_wall) for r in batch.recipients)
        else:
            heapq.heappush(delayed, (now_mono + due_wall - now_wall, id(batch), batch))

    def _dispatch(self, ready: collections.deque[_Batch], delayed: list, start: float) -> None:
        policy = self.policy
        abort: BaseException | None = None
        next_progress = start + policy.progress_interval
        next_log = start + policy.log_interval
        with ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix=f"send-{self.key.channel}") as pool:
            running: dict[Future[_Outcome], _Batch] = {}
            while (ready or delayed or running) and not (abort and not running):
                now = self.clock.monotonic()
                while delayed and delayed[0][0] <= now:
                    ready.append(heapq.heappop(delayed)[2])
                while ready and abort is None and len(running) < policy.concurrency:
                    batch = ready.popleft()
                    running[pool.submit(self._attempt, batch)] = batch
                if abort is not None and not running:
                    break
                wake = min(next_progress, delayed[0][0] if delayed else next_progress)
                if not running:  # only delayed work (retries, holds): sleep until it is due
                    self.clock.sleep(wake - self.clock.monotonic())
                    done = set()
                else:
                    done, _ = wait(running, timeout=max(0.01, wake - self.clock.monotonic()),
                                   return_when=FIRST_COMPLETED)
                for future in done:
                    batch = running.pop(future)
                    outcome = future.result()  # _attempt catches provider errors; anything else is a bug
                    self._count(outcome, batch)
                    self._requeue_held(outcome, batch, delayed)
                    if outcome.abort is not None and abort is None:
                        abort = outcome.abort
                        self.aborting.set()
                    if outcome.retry_in is not None:
                        self.retries += 1
                        retry = _Batch(batch.recipients, batch.attempts + 1)
                        heapq.heappush(delayed, (self.clock.monotonic() + outcome.retry_in, id(retry), retry))
                now = self.clock.monotonic()
                if now >= next_progress:
                    next_progress = now + policy.progress_interval
                    self._report(start, now, log=now >= next_log)
                    if now >= next_log:
                        next_log = now + policy.log_interval
            self._report(start, self.clock.monotonic(), log=False)
        if abort is not None:
            raise abort

    def _requeue_held(self, outcome: _Outcome, batch: _Batch, delayed: list) -> None:
        """Queue the recipients a screen held for when they may go (within max_hold_hours), like a retry."""
        now_wall, now_mono = self.clock.time(), self.clock.monotonic()
        for recipient, until in outcome.held:
            self.held[recipient.customer_id] = until
            if until is not None and until <= self.horizon:
                later = _Batch([recipient], batch.attempts)
                heapq.heappush(delayed, (now_mono + max(0.0, until - now_wall), id(later), later))

    def _screened(self, recipients: Sequence[Recipient], outcome: _Outcome) -> list[Recipient]:
        """The recipients the screen lets go now; the others are skipped (final) or held (pending)."""
        if self.screen is None:
            return list(recipients)
        keep = []
        for recipient in recipients:
            verdict = self.screen.check(recipient.customer_id, recipient.address)
            if isinstance(verdict, Skip):
                self.ledger.mark_skipped(self.key, [recipient.customer_id], verdict.state, verdict.reason)
                outcome.skipped[verdict.state] += 1
            elif isinstance(verdict, Hold):
                # the row keeps the time for a later run; without one (None) a later run screens it again
                self.ledger.hold(self.key, [recipient.customer_id], verdict.reason, verdict.until)
                outcome.held.append((recipient, verdict.until))
            else:
                keep.append(recipient)
        return keep

    def _attempt(self, batch: _Batch) -> _Outcome:
        """One request for one batch (runs in a pool thread); returns what happened."""
        outcome = _Outcome()
        messages: list[Message] = []
        recipients = {r.customer_id: r for r in batch.recipients}
        for recipient in self._screened(batch.recipients, outcome):
            message, reason = self._message(recipient)
            if reason is not None:
                self.ledger.mark_failed(self.key, [recipient.customer_id], reason)
                self._log_failure(recipient, reason)
                outcome.failed += 1
            else:
                messages.append(message)
        if not messages:
            return outcome
        self.limiter.acquire()
        if self.aborting.is_set():
            return outcome  # the rows stay pending for the next run
        if self.screen is not None:  # again with the token in hand: a suppression added meanwhile counts
            still = {r.customer_id for r in self._screened([recipients[m.customer_id] for m in messages], outcome)}
            messages = [m for m in messages if m.customer_id in still]
            if not messages:
                return outcome
        ids = self.ledger.mark_sending(self.key, [m.customer_id for m in messages])
        if len(ids) < len(messages):  # another process claimed (or finished) these first: never send them
            logger.warning("%s: %d recipient(s) were claimed by another process; not sent by this one",
                           self._label(), len(messages) - len(ids))
            mine = set(ids)
            messages = [m for m in messages if m.customer_id in mine]
            if not messages:
                return outcome
        outcome.requests = 1
        attempts = batch.attempts + 1
        try:
            provider_ids = self.client.send(messages)
        except AuthApiError as exc:
            self.ledger.mark_retry(self.key, ids, str(exc), self.clock.time())
            outcome.abort = exc
        except OptedOutError as exc:
            self.ledger.mark_skipped(self.key, ids, SUPPRESSED, str(exc))
            outcome.skipped[SUPPRESSED] += len(ids)
            if self.screen is not None:
                for message in messages:
                    self.screen.opted_out(message, str(exc))
        except FatalApiError as exc:
            self.ledger.mark_failed(self.key, ids, str(exc))
            for recipient in batch.recipients[:3]:
                self._log_failure(recipient, str(exc))
            outcome.failed += len(ids)
        except RetriableApiError as exc:
            if exc.maybe_delivered and not self.client.idempotent:
                self.ledger.mark_unknown(self.key, ids, f"{exc}: may have been delivered, not retried")
                outcome.unknown += len(ids)
            elif attempts >= self.policy.max_attempts:
                if exc.maybe_delivered:
                    self.ledger.mark_unknown(self.key, ids, f"{exc}: may have been delivered; {attempts} attempts")
                    outcome.unknown += len(ids)
                else:
                    self.ledger.mark_failed(self.key, ids, f"gave up after {attempts} attempt(s): {exc}")
                    outcome.failed += len(ids)
            else:
                delay = self.policy.delay_after(attempts, exc.retry_after)
                self.ledger.mark_retry(self.key, ids, str(exc), self.clock.time() + delay)
                outcome.retry_in = delay
        except BaseException as exc:
            # A bug or an interrupt mid-request: the provider may have the message.
            self.ledger.mark_unknown(self.key, ids, f"unexpected {type(exc).__name__} during the request")
            raise
        else:
            self.ledger.mark_sent(self.key, list(zip(ids, provider_ids, strict=True)))
            outcome.sent += len(ids)
        return outcome

    def _message(self, recipient: Recipient) -> tuple[Message | None, str | None]:
        try:
            content = self.render(recipient)
        except FatalApiError as exc:
            return None, str(exc)
        message = Message(recipient.customer_id, recipient.address, self.key.send_id(recipient.customer_id), content)
        return message, self.client.reject_reason(message)

    def _log_failure(self, recipient: Recipient, reason: str) -> None:
        with self.log_lock:
            self.logged_failures += 1
            if self.logged_failures <= MAX_LOGGED_FAILURES:
                logger.warning("%s: customer %s (%s) failed: %s", self._label(), recipient.customer_id,
                               self.mask(recipient.address), reason)
            elif self.logged_failures == MAX_LOGGED_FAILURES + 1:
                logger.warning("%s: more failures; not logging each one (see the ledger)", self._label())

    def _count(self, outcome: _Outcome, batch: _Batch) -> None:
        self.counts[SENT] += outcome.sent
        self.counts[FAILED] += outcome.failed
        self.counts[UNKNOWN] += outcome.unknown
        self.counts.update(outcome.skipped)
        self.requests += outcome.requests
        if outcome.sent:
            self.recent.append((self.clock.monotonic(), outcome.sent))
        held_now = {r.customer_id for r, _ in outcome.held}
        for recipient in batch.recipients:  # held before, not any more: it went, or was skipped
            if recipient.customer_id not in held_now:
                self.held.pop(recipient.customer_id, None)

    def _report(self, start: float, now: float, log: bool) -> None:
        window = 5.0
        while self.recent and self.recent[0][0] < now - window:
            self.recent.popleft()
        span = min(window, max(now - start, 1e-3))
        rate = sum(n for _, n in self.recent) / span
        target = sum(self.initial.values())
        done = {state: self.initial[state] + self.counts[state] for state in FINAL_STATES}
        times = [t for t in self.held.values() if t is not None]
        snapshot = Progress(target, done, target - sum(done.values()), rate, now - start, len(self.held),
                            (min(times), max(times)) if times else None)
        if log:
            logger.info("%s: %s", self._label(), snapshot)
        if self.progress is not None:
            try:
                self.progress(snapshot)
            except Exception:  # noqa: BLE001 - a progress display must never stop a send
                logger.warning("%s: progress callback failed", self._label(), exc_info=True)


def _utc(epoch: float) -> str:
    """An epoch time as `YYYY-MM-DD HH:MM UTC` for progress messages and the result file."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in (PENDING, SENDING, *FINAL_STATES) if counts.get(s, 0))
