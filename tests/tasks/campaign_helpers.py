"""Helpers for the campaign send tests: a small customer CSV and config for a channel."""

from __future__ import annotations

import csv
import datetime
import json
import random
from pathlib import Path

import luigi

from tasks import state
from tasks.campaign import wiring
from tasks.campaign.tasks import LoadSegments, SendEmailCampaign, SendPushNotification, SendSmsCampaign
from tasks.channels.ledger import SendKey, SendLedger, ledger_path

DAY = datetime.date(2026, 3, 2)
TASKS = {"email": SendEmailCampaign, "sms": SendSmsCampaign, "push": SendPushNotification}
ADDRESS = {"email": "email", "sms": "phone", "push": "device_token"}
_AREAS = ("201", "212", "415", "617", "718", "305", "312", "646")


def customer(i: int, rng: random.Random) -> dict[str, str]:
    """Customer number `i` with an address on every channel (unique per customer)."""
    token = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") for _ in range(140))
    return {
        "customer_id": f"T{i:05d}",
        "segment": ("premium", "regular", "new")[i % 3],
        "email": f"user{i}@example.com",
        "phone": f"+1{_AREAS[i // 100 % len(_AREAS)]}5550{100 + i % 100}",
        "device_token": f"tk{i:05d}:{token}",
    }


def write_customers(path: Path, count: int, seed: int = 7) -> list[dict[str, str]]:
    """Write a valid segment CSV of `count` customers; returns the rows."""
    rng = random.Random(seed)
    rows = [customer(i, rng) for i in range(count)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def setup_campaign(luigi_cfg, tmp_path: Path, count: int, **channels: dict[str, object]) -> list[dict[str, str]]:
    """Customer CSV + LoadSegments built + per-channel config overrides (`email={"rate": 20}`)."""
    rows = write_customers(tmp_path / "customers.csv", count)
    luigi_cfg.set("segments", "input_path", tmp_path / "customers.csv")
    for channel, settings in channels.items():
        for key, value in settings.items():
            luigi_cfg.set(f"{channel}_campaign", key, value)
    assert luigi.build([LoadSegments(date=DAY)], local_scheduler=True, log_level="WARNING")
    return rows


def build(*tasks: luigi.Task, workers: int = 1) -> bool:
    return luigi.build(list(tasks), local_scheduler=True, workers=workers, log_level="WARNING")


def ledger_rows(var_path: Path, channel: str, campaign: str = "demo", date: datetime.date = DAY) -> dict[str, dict]:
    """customer_id -> ledger row of one send, from the configured state backend."""
    with SendLedger(state.database(ledger_path(var_path, channel))) as ledger:
        return {r["customer_id"]: r for r in ledger.rows(SendKey(campaign, date.isoformat(), channel))}


def result(var_path: Path, channel: str, segment: str = "all") -> dict:
    """The result JSON of the `demo` send of DAY on `channel`."""
    return json.loads(wiring.result_path(var_path, DAY, "demo", channel, segment).read_text())
