"""RangeDaily's completeness check for the campaign sends (bulk_complete): local result files, and marker rows
in a real Postgres with shared state."""

from __future__ import annotations

import datetime as dt
import functools

from tasks.campaign.tasks import SendEmailCampaign, SendPushNotification, SendSmsCampaign

DAYS = [dt.date(2026, 6, 26) + dt.timedelta(days=i) for i in range(5)]


def test_local_result_files_say_which_days_are_sent() -> None:
    for day in (DAYS[1], DAYS[3]):
        task = SendSmsCampaign(date=day)
        task.result_path().parent.mkdir(parents=True, exist_ok=True)
        task.result_path().write_text("{}")
    assert SendSmsCampaign.bulk_complete(DAYS) == [DAYS[1], DAYS[3]]
    assert SendEmailCampaign.bulk_complete(DAYS) == []
    other = functools.partial(SendSmsCampaign, campaign="spring")  # RangeDaily's --of-params
    assert SendSmsCampaign.bulk_complete.__func__(other, DAYS) == []


def test_shared_state_markers_are_read_in_one_query(postgres_state) -> None:
    for day in (DAYS[0], DAYS[2], DAYS[4]):
        SendPushNotification(date=day).output().write({"counts": {"sent": 1}})
    SendPushNotification(date=DAYS[1], campaign="other").output().write({})
    assert SendPushNotification.bulk_complete(iter(DAYS)) == [DAYS[0], DAYS[2], DAYS[4]]
    assert SendEmailCampaign.bulk_complete(DAYS) == []
