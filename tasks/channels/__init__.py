"""Campaign sends: one module per provider (outbox, sendgrid, twilio, fcm) and the shared sender.

A provider module is a wire format and an error map (STYLE principle 7); `sender.py` owns
rate limiting (`limiter.py`), concurrency, retries and the durable ledger (`ledger.py`);
`campaign.py` wires them from the `[email_campaign]`, `[sms_campaign]`, `[push_campaign]`
sections for the Luigi tasks in tasks/campaigns.py.
"""
