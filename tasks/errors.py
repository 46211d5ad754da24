"""The exception tree: each error is typed by what the caller should do about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class TasksError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(TasksError):
    """Raised when luigi.cfg, a table spec or the environment is missing or malformed: fix the config."""


@dataclass(frozen=True)
class CheckFailure:
    """One failed data-quality check, with the numbers that made it fail."""

    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


class DataValidationError(TasksError):
    """Raised when data fails its checks: nothing was published; fix the data or the thresholds."""

    def __init__(self, subject: str, failures: Sequence[CheckFailure]) -> None:
        self.subject = subject
        self.failures = list(failures)
        listed = "; ".join(str(f) for f in self.failures)
        super().__init__(f"{subject} failed {len(self.failures)} check(s): {listed}")


class WarehouseError(TasksError):
    """Raised when a warehouse statement fails; carries the query id to look up in Snowflake's history."""

    def __init__(self, message: str, query_id: str | None = None, sql_name: str | None = None) -> None:
        self.query_id = query_id
        self.sql_name = sql_name
        where = f" [{sql_name}]" if sql_name else ""
        qid = f" (query id {query_id})" if query_id else ""
        super().__init__(f"{message}{where}{qid}")


class ObjectMissingError(WarehouseError):
    """Raised when a statement names a table or schema this role cannot see (Snowflake 2003/2043): it does
    not exist yet, or the role was never granted it; Snowflake does not say which."""


class NotAuthorizedError(WarehouseError):
    """Raised when the role lacks the privilege for a statement (SQLSTATE 42501, Snowflake 3001/3003),
    or cannot see a table this package owns (it exists, yet reads as missing): grant it (the message
    names the object and what the statement needs)."""


class ConnectionLostError(WarehouseError):
    """Raised when the session ended under a statement (expired, server gone): reconnect and retry."""


class StaleBuildError(WarehouseError):
    """Raised when a validated build can no longer be published (its staging table was dropped, or the
    builds table does not hold it as validated): stage it again."""


# The Luigi event a task fires (task, message) when checks of severity "warn" failed: the publish goes
# on, tasks/ops/alerts.py alerts it.
CHECK_WARNING = "tasks.check_warning"


class ApiError(TasksError):
    """Base of provider API errors; `status` is the HTTP status when there was a response."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class RetriableApiError(ApiError):
    """Raised for timeouts, connection errors, 429 and 5xx: the request may be retried after `retry_after`."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message, status, code)
        self.retry_after = retry_after
        # True when the provider may have accepted the request before failing (read timeout,
        # connection dropped after the body was sent): the sender records `unknown`, not `failed`.
        self.maybe_delivered = maybe_delivered


class FatalApiError(ApiError):
    """Raised for permanent failures (validation, invalid recipient, bad credentials): never retried."""


class OptedOutError(FatalApiError):
    """Raised when a provider says an address may never be messaged again (Twilio 21610 after STOP, FCM
    UNREGISTERED): the recipient ends `suppressed` and the address goes into the suppression store."""


class MissingFieldError(FatalApiError):
    """Raised when a template field is empty for a recipient and the template declares no default: that
    recipient fails `missing_field` before any request."""


class AuthApiError(FatalApiError):
    """Raised when a provider rejects our credentials (401/403): the send stops, no recipient is marked failed."""


class CampaignFailedError(TasksError):
    """Raised when a channel send ends with more permanent failures than `max_failure_ratio`: check the list."""


class StateBackendError(TasksError):
    """Raised when the shared state database ([state] backend = postgres) is unreachable or fails a statement:
    nothing was sent on its behalf; fix TASKS_STATE_DSN or the server, and re-run (the ledger resumes)."""


class LockHeldError(TasksError):
    """Raised when another live process (on any host sharing the state) holds the lock of this send: wait for
    it, or stop it; never run two senders on one send's `sending` rows."""


class LockLostError(StateBackendError):
    """Raised when a send's run lock (a Postgres advisory lock) was lost mid-run, e.g. its session ended with a
    server restart or an idle-session timeout: the send claims nothing more, since another host may now take
    the send over; re-run it (the ledger resumes, the requests in flight end `unknown`)."""

class RecipientsHeldError(TasksError):
    """Raised when recipients are still held for quiet hours past `max_hold_hours` (or have no known time
    zone): they stay `pending`, and the next run of the same send resumes them."""


class SendHeldError(TasksError):
    """Raised when a send's breaker held it (too many hard bounces, complaints or filtered SMS among its delivery
    events): the unsent recipients stay `pending`, and every run stops before claiming one until a person runs
    `python -m tasks release-send`. `first` is True only for the run that recorded the hold (it alerts)."""

    def __init__(self, message: str, first: bool = False) -> None:
        self.first = first
        super().__init__(message)


class WebhookRefusedError(TasksError):
    """Raised when a provider's POST to the web endpoint must be refused (signature missing or wrong, timestamp
    stale, body malformed or too big): answer `status`, store nothing; `reason` is safe to log (no address)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")
