"""Files holding personal data are owner-only: 0600 files, 0700 folders, whatever the umask.

A real LoadSegments and three real outbox sends (addresses and bodies) under a permissive
umask; every file and folder they leave under var/ is then checked, as are the cron
wrapper's run record and the alerts file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tasks.campaign.tasks import LoadSegments, SendEmailCampaign, SendPushNotification, SendSmsCampaign
from tasks.channels.limiter import ChannelLimiter
from tasks.files import private_dir
from tasks.ops import cron, slack
from tests.tasks.campaign_helpers import DAY, build, setup_campaign


@pytest.fixture
def permissive_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    found = {str(root.relative_to(root.parent)): stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root.parent))] = stat.S_IMODE(path.stat().st_mode)
    return found


def test_segments_ledger_outbox_alerts_and_runs_are_owner_only(luigi_cfg, tmp_path, var_path, permissive_umask):
    setup_campaign(luigi_cfg, tmp_path, 30, email={"rate": 500, "burst": 50}, sms={"rate": 500, "burst": 50},
                   push={"rate": 500, "burst": 50})
    assert build(LoadSegments(date=DAY), SendEmailCampaign(date=DAY), SendSmsCampaign(date=DAY),
                 SendPushNotification(date=DAY))
    slack.append_to_file({"text": "alert for a@example.com"}, delivery="file")
    with ChannelLimiter(1, 1, "alerts", state_path=var_path / "alerts" / "ratelimit.sqlite") as limiter:
        limiter.acquire(1.0)  # the alerts' shared bucket: a SQLite file SQLite would create by the umask
    cron.record_run({"status": "ok", "exit_code": 0, "dates": [DAY.isoformat()]})

    checked = {}
    for folder in ("segments", "ledger", "outbox", "campaigns", "alerts", "runs"):
        checked.update(modes(var_path / folder))
    assert any(name.endswith("customers.parquet") for name in checked)
    assert any(name.endswith("rejects.csv") for name in checked)
    assert any(name.endswith(".sqlite3") for name in checked)
    assert "alerts/ratelimit.sqlite" in checked
    assert any(name.endswith(".jsonl") and name.startswith("outbox") for name in checked)
    loose = {name: oct(mode) for name, mode in checked.items()
             if mode != (0o700 if (var_path / name).is_dir() else 0o600)}
    assert loose == {}
    assert stat.S_IMODE(var_path.stat().st_mode) == 0o700


def test_an_existing_folder_keeps_its_mode(tmp_path, permissive_umask):
    shared = tmp_path / "logs"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    private_dir(shared / "cron")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # e.g. /tmp for a log file: never tightened
    assert stat.S_IMODE((shared / "cron").stat().st_mode) == 0o700
