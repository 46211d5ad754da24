"""Operations wing: the cron wrapper (cron.py), the luigid launcher (luigid.py), failure alerts
(alerts.py), Slack delivery (slack.py), the alert ledger and redaction. Imports the channels
library (Slack goes through its transport and limiter) and the base modules; never another wing."""
