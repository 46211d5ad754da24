"""The one-click unsubscribe page in a real browser: headless Chromium, driven by selenium.

A real e-mail send (the outbox provider) writes each message's RFC 8058 headers; the test takes
the `List-Unsubscribe` link of one message, as a mail client would. The link is
https://unsubscribe.example.com/u/<token>; the HTTPS proxy in front of `python -m tasks web`
(here: a real subprocess on loopback) is played by pointing the browser at the same path and
token on the endpoint's own address. Opening the link shows a confirmation page and suppresses
nothing (link scanners open every link); the click on its button suppresses the customer and
the address, and the next send skips them.

Debian's `chromium` and `chromium-driver` (`make test` installs them when missing, via `make browser`).
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile

import pytest

from tasks.campaign import wiring
from tasks.campaign.tasks import LoadSegments
from tasks.channels.outbox import outbox_path
from tasks.channels.suppressions import SuppressionStore, suppressions_path
from tests.state_fixtures import free_port
from tests.tasks.campaign_helpers import DAY, setup_campaign
from tests.tasks.web_helpers import start_web

pytestmark = pytest.mark.slow

SECRET = "unsubscribe-browser-secret-0123456789"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "Debian's chromium and chromium-driver are missing: `make browser` installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="tasks-chromium-")  # a new, empty profile
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(30)
    return browser, profile


def test_the_unsubscribe_link_of_a_sent_email_works_in_chromium(luigi_cfg, tmp_path, var_path, subprocess_env,
                                                                monkeypatch):
    monkeypatch.setenv("UNSUBSCRIBE_SECRET", SECRET)
    rows = setup_campaign(luigi_cfg, tmp_path, 3, email={"provider": "outbox", "rate": 500, "burst": 100,
                                                         "unsubscribe_url": "https://unsubscribe.example.com/u/{token}"})
    luigi_cfg.set("campaign", "frequency_cap", "off")
    first = wiring.run_channel_send("email", DAY, "demo", "all", LoadSegments(date=DAY).customers_path())
    assert first.counts["sent"] == 3
    sent = [json.loads(line) for line in outbox_path(var_path, "email", "demo", DAY.isoformat()).read_text()
            .splitlines()]
    message = next(m for m in sent if m["customer_id"] == rows[0]["customer_id"])
    link = message["headers"]["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://unsubscribe.example.com/u/")

    port = free_port()
    proc = start_web({**subprocess_env, "UNSUBSCRIBE_SECRET": SECRET}, tmp_path / "web.log", port)
    browser, profile = chromium()
    try:
        browser.get(link.replace("https://unsubscribe.example.com", f"http://127.0.0.1:{port}"))
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        assert browser.title == "Unsubscribe"
        assert "Stop email messages" in browser.find_element(By.TAG_NAME, "body").text
        with SuppressionStore(suppressions_path(var_path)) as store:
            assert store.entries() == [], "opening the link (a GET) suppresses nothing"
        button = browser.find_element(By.CSS_SELECTOR, "form[method=post] button[type=submit]")
        button.click()
        WebDriverWait(browser, 20).until(expected_conditions.title_is("Unsubscribed"))
        assert "You will not get these messages any more." in browser.find_element(By.TAG_NAME, "body").text
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    with SuppressionStore(suppressions_path(var_path)) as store:
        assert {(e.channel, e.kind, e.value, e.source) for e in store.entries()} == {
            ("email", "customer", rows[0]["customer_id"], "unsubscribe"),
            ("email", "address", rows[0]["email"], "unsubscribe")}
    again = wiring.run_channel_send("email", DAY, "next", "all", LoadSegments(date=DAY).customers_path())
    assert (again.counts["sent"], again.counts["suppressed"]) == (2, 1)
