"""What the sender hands a provider client, and what a client must offer. Reads no config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One rendered message to one recipient; `content` keys depend on the channel
    (email: subject, body, optional html and unsubscribe_url, the one-click URL a provider turns
    into RFC 8058 headers; sms: body; push: title, body). `address` is PII: never log it raw."""

    customer_id: str
    address: str
    send_id: str
    content: Mapping[str, str]


class ProviderClient(Protocol):
    """A provider: a wire format and an error map. `send` raises the errors of tasks/errors.py."""

    provider: str
    # recipients per request (SendGrid: up to 1000 personalizations; the others: 1)
    batch_size: int
    # True when the provider deduplicates a repeated request (an idempotency key): only then
    # may a request that may have been delivered be sent again.
    idempotent: bool

    def reject_reason(self, message: Message) -> str | None:
        """Why this provider can never accept `message` (checked before sending), or None."""

    def send(self, messages: Sequence[Message]) -> list[str | None]:
        """Send one request for `messages`; the provider's message id per message, in order."""

    def close(self) -> None:
        """Release connections and files."""
