"""When delivery events are applied to the send ledgers and the suppression store (what they change:
tasks/channels/delivery.py), wired to this project's stores.

Applied (each time every event stored since the last apply, idempotently):
- by the web endpoint, right after it stored a batch: a background thread of `python -m tasks web`, woken by
  each stored batch, so the provider's 2xx never waits for it;
- at the start of every channel send (wiring.run_channel_send): what earlier sends' events suppressed is
  skipped by this one, even when the endpoint died before applying them;
- at the start of ExportCampaignEvents, so the export sees every outcome;
- after `python -m tasks events ingest-outbox` stores the demo outbox's events.

Sections read: [paths] (var_dir, by the caller), [state] (where the stores are), [segments] default_region.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from tasks import config, state
from tasks.campaign import compliance
from tasks.channels import delivery
from tasks.channels.ledger import SendLedger, ledger_path
from tasks.state.events import EventStore, events_path

logger = logging.getLogger(__name__)


def apply_delivery_events(var_dir: str | os.PathLike[str]) -> delivery.Applied:
    """Apply every event stored since the last apply to the ledgers and the suppression store."""
    region = config.SegmentsConfig().default_region
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(EventStore(state.database(events_path(var_dir))))
        suppressions = stack.enter_context(compliance.open_suppressions(var_dir))
        ledgers: dict[str, SendLedger] = {}

        def ledger_of(channel: str) -> SendLedger:
            if channel not in ledgers:
                ledgers[channel] = stack.enter_context(SendLedger(state.database(ledger_path(var_dir, channel))))
            return ledgers[channel]

        applied = delivery.apply_events(store, ledger_of, suppressions, region)
    if applied.events:
        logger.info("delivery events applied: %d read, %d ledger outcome(s) changed, %d address(es) suppressed "
                    "(up to event %d)", applied.events, applied.outcomes, applied.suppressed, applied.seq)
    return applied


class BackgroundApplier:
    """A thread that applies delivery events whenever `kick()` says a batch was stored (the web endpoint's).
    A failure is logged and retried at the next kick: the events stay in the store, and the next send or export
    applies them anyway."""

    def __init__(self, var_dir: str | os.PathLike[str]) -> None:
        self.var_dir = var_dir
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="delivery-applier", daemon=True)

    def start(self) -> BackgroundApplier:
        self._thread.start()
        return self

    def kick(self) -> None:
        """Ask for an apply soon (returns at once)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                apply_delivery_events(self.var_dir)
            except Exception as exc:  # noqa: BLE001 - the endpoint keeps storing; the next kick, send or export applies
                logger.warning("applying delivery events failed (retried later): %s: %s", type(exc).__name__,
                               str(exc).splitlines()[0][:200] if str(exc) else "")
