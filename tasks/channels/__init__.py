"""The send library: one module per provider (outbox, sendgrid, twilio, fcm) and the shared parts.

A provider module is a wire format and its own error codes on top of the
shared status rules (`status.py`), the HTTP transport and request loop (`http.py`); `sender.py`
owns rate limiting (`limiter.py`), concurrency, retries and the durable ledger (`ledger.py`).
Slack alerts (tasks/ops/slack.py) use the same transport, status rules and limiter. Imports only
itself and the base modules (tasks.errors, tasks.files, tasks.pii); reads no luigi.cfg section:
tasks/campaign/wiring.py wires it from [email_campaign], [sms_campaign] and [push_campaign].
"""
