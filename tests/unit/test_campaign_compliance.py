"""The pure rules of campaign compliance: frequency caps, quiet hours across zones, the suppression list,
one message per address, unsubscribe tokens, the suppression store."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from tasks import state
from tasks.campaign import compliance
from tasks.channels.ledger import SendKey
from tasks.channels.screen import Hold
from tasks.channels.suppressions import Suppression, SuppressionStore
from tasks.channels.unsubscribe import make_token, read_token
from tasks.errors import ConfigError

UTC = datetime.UTC


def at(hour: int, minute: int = 0, day: int = 2) -> float:
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=UTC).timestamp()


def test_frequency_cap_parses_and_rejects() -> None:
    cap = compliance.parse_frequency_cap("2/7d")
    assert (cap.limit, cap.window) == (2, 7 * 86_400)
    assert compliance.parse_frequency_cap(" 3 / 12h ").window == 12 * 3_600
    assert compliance.parse_frequency_cap("off") is None and compliance.parse_frequency_cap("") is None
    for bad in ("0/7d", "2/0d", "2 per week", "2/7w"):
        with pytest.raises(ConfigError, match="frequency_cap"):
            compliance.parse_frequency_cap(bad)


def test_quiet_hours_auto_is_the_tcpa_window_for_real_providers_only() -> None:
    tcpa = compliance.parse_quiet_hours("auto", "twilio")
    assert (tcpa.start, tcpa.end) == (21 * 60, 8 * 60)
    assert compliance.parse_quiet_hours("auto", "outbox") is None
    assert compliance.parse_quiet_hours("off", "twilio") is None
    assert compliance.parse_quiet_hours("20:00-08:00", "outbox").start == 20 * 60
    for bad, match in (("9pm-8am", "HH:MM"), ("25:00-08:00", "two different"), ("08:00-08:00", "two different")):
        with pytest.raises(ConfigError, match=match):
            compliance.parse_quiet_hours(bad, "twilio")
    with pytest.raises(ConfigError, match="default_timezone"):
        compliance.parse_quiet_hours("auto", "twilio", "Mars/Olympus")


def test_a_recipient_is_held_until_its_own_local_window_opens() -> None:
    quiet = compliance.parse_quiet_hours("21:00-08:00", "twilio")
    # 03:00 UTC on 2 March: 22:00 in New York (EST), 19:00 in Los Angeles (PST)
    assert quiet.check(("America/Los_Angeles",), at(3)) is None
    held = quiet.check(("America/New_York",), at(3))
    assert isinstance(held, Hold) and held.until == at(13) and "America/New_York" in held.reason
    assert quiet.check(("America/New_York",), at(13)) is None  # the window opens at 08:00 sharp
    assert quiet.check(("America/New_York",), at(2)) == Hold(at(13), held.reason)  # 21:00 local: quiet
    assert quiet.check(("America/New_York",), at(1, 59)) is None  # 20:59 local
    # DST: on 8 March 2026 New York moves to EDT, so 08:00 local is 12:00 UTC
    assert quiet.check(("America/New_York",), at(3, day=9)).until == at(12, day=9)


def test_a_number_spanning_zones_must_be_inside_every_window() -> None:
    quiet = compliance.parse_quiet_hours("21:00-08:00", "twilio")
    # 14:00 UTC: 08:00 in Chicago (CST), 06:00 in Los Angeles: both must be open, so 16:00 UTC
    held = quiet.check(("America/Chicago", "America/Los_Angeles"), at(14))
    assert held.until == at(16) and "2 zones" in held.reason
    # +1 800 maps to 42 zones, Guam to Halifax. With 8:00-21:00 they still share 22:00-01:00 UTC (08:00 in Guam,
    # 18:00 in Halifax before DST), so the strictest rule sends then
    zones = compliance.zones_for_phone("+18005550199")
    assert len(zones) == 42 and "Pacific/Guam" in zones and "America/Halifax" in zones
    assert quiet.check(zones, at(3)).until == at(22)
    # a stricter window (10:00-20:00) leaves them none: without a default the number is held without a time
    strict = compliance.parse_quiet_hours("20:00-10:00", "twilio")
    no_overlap = strict.check(zones, at(3))
    assert no_overlap.until is None
    assert "never overlap" in no_overlap.reason and "no default_timezone" in no_overlap.reason
    chicago = compliance.parse_quiet_hours("20:00-10:00", "twilio", "America/Chicago")
    assert chicago.check(zones, at(3)).until == at(16)  # 10:00 CST
    assert chicago.check((), at(17)) is None  # unknown zone: the default decides
    assert strict.check((), at(17)).until is None


def test_zone_hints_prefer_the_timezone_column_then_the_phone() -> None:
    assert compliance.zone_hints("sms", "+12125550100", {"timezone": "Europe/London"}) == ("Europe/London",)
    assert compliance.zone_hints("sms", "+12125550100", {"timezone": "Nowhere/Else"}) == ("America/New_York",)
    assert compliance.zone_hints("push", "tok", {"phone": "+14155550100"}) == ("America/Los_Angeles",)
    assert compliance.zone_hints("push", "tok", {"phone": None}) == ()
    assert compliance.zones_for_phone("+447700900123") == ()  # phonenumbers: Etc/Unknown


def test_suppression_list_is_normalised_like_the_loader_and_bad_lines_stop_the_send(tmp_path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("Channel,Address\nemail, Ann@Example.COM \nsms,(212) 555-0100\nall,+1 415 555 0100\n"
                    "push,tok:abc\nALL,bob@example.org\n,\n")
    assert compliance.read_suppression_list(path) == {
        ("email", "ann@example.com"), ("sms", "+12125550100"), ("all", "+14155550100"), ("push", "tok:abc"),
        ("all", "bob@example.org"),
    }
    path.write_text("channel,address\nemail,not-an-address\nfax,+12125550100\nsms,+12125550100\n")
    with pytest.raises(ConfigError, match=r"line\(s\) \[2, 3\]") as info:
        compliance.read_suppression_list(path)
    assert "not-an-address" not in str(info.value)
    path.write_text("address\nann@example.com\n")
    with pytest.raises(ConfigError, match="header"):
        compliance.read_suppression_list(path)


def test_the_first_customer_id_keeps_a_shared_address() -> None:
    dups = compliance.duplicate_addresses([("c3", "a@x.org"), ("c1", "a@x.org"), ("c2", "b@x.org"), ("c9", "a@x.org")])
    assert dups == {"c3": "c1", "c9": "c1"}


def test_unsubscribe_tokens_cannot_be_forged_or_altered() -> None:
    secret = b"s" * 32
    key = SendKey("spring/sale", "2026-03-02", "email")
    token = make_token(secret, key, "C/1")
    assert read_token(secret, token) == (key, "C/1")
    payload, mac = token.split(".")
    assert read_token(b"t" * 32, token) is None  # another secret
    assert read_token(secret, f"{payload}.{mac[:-2]}AA") is None  # altered signature
    other = make_token(secret, key, "C2").split(".")[0]
    assert read_token(secret, f"{other}.{mac}") is None  # someone else's id with this signature
    for junk in ("", "abc", "a.b.c", "!!.??", f"{payload}."):
        assert read_token(secret, junk) is None
    assert "@" not in token and "C/1" not in token  # no address, and the id is not in clear text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_suppression_store_matches_channel_all_and_customers(tmp_path, request, backend) -> None:
    if backend == "postgres":
        request.getfixturevalue("postgres_state")
    with SuppressionStore(state.database(tmp_path / "s.sqlite3")) as store:
        assert store.add([Suppression("sms", "address", "+12125550100", "twilio", "21610"),
                          Suppression("all", "address", "ann@example.com", "cli"),
                          Suppression("email", "customer", "C7", "unsubscribe")]) == 3
        assert store.add([Suppression("sms", "address", "+12125550100", "cli")]) == 0  # first source kept
        assert store.find("sms", "+12125550100").source == "twilio"
        assert store.find("push", "+12125550100") is None
        assert store.find("email", "ann@example.com").channel == "all"
        assert store.find("email", "new@example.com", "C7").kind == "customer"
        assert store.find("sms", "+10000000000", "C7") is None
        assert store.remove("sms", "address", "+12125550100") and not store.remove("sms", "address", "+12125550100")
        assert [e.value for e in store.entries()] == ["ann@example.com", "C7"]
        with pytest.raises(ValueError):
            store.add([Suppression("fax", "address", "x", "cli")])
        # one query for a request's recipients: by address or by customer id, the oldest entry first
        store.add([Suppression("email", "address", "ann@example.com", "unsubscribe", created_at=1.0)])
        found = store.find_many("email", [("C1", "ann@example.com"), ("C7", "x@example.com"), ("C8", "y@x.org")])
        assert {cid: (e.channel, e.kind, e.source) for cid, e in found.items()} == {
            "C1": ("email", "address", "unsubscribe"), "C7": ("email", "customer", "unsubscribe")}
    if backend == "sqlite":
        assert oct((tmp_path / "s.sqlite3").stat().st_mode & 0o777) == "0o600"
    else:
        assert not (tmp_path / "s.sqlite3").exists()


def test_the_screen_finds_duplicates_once_and_only_when_it_screens_and_rechecks_only_the_store(tmp_path) -> None:
    @dataclasses.dataclass
    class R:
        customer_id: str
        address: str
        fields: dict = dataclasses.field(default_factory=dict)

    scans = []

    def scan() -> dict[str, str]:
        scans.append(1)
        return {"C2": "C1"}

    key = SendKey("spring", "2026-03-02", "email")
    with SuppressionStore(tmp_path / "s.sqlite3") as store:
        screen = compliance.CampaignScreen(key, "sendgrid", store=store, duplicates=scan,
                                           listed={("email", "c@x.org")})
        assert scans == []  # a send with nothing left to screen never scans customers.parquet
        batch = [R("C1", "a@x.org"), R("C2", "a@x.org"), R("C3", "c@x.org")]
        assert {cid: v.state for cid, v in screen.check(batch).items()} == {
            "C2": "duplicate_address", "C3": "suppressed"}
        screen.check(batch)
        assert scans == [1]
        assert screen.recheck(batch) == {}  # the list and the duplicates were just checked
        store.add([Suppression("email", "address", "a@x.org", "unsubscribe")])
        assert {cid: v.state for cid, v in screen.recheck(batch[:1]).items()} == {"C1": "suppressed"}
