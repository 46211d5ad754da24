"""Campaign templates: rendering, load-time checks, the SMS length limit."""

from __future__ import annotations

import pytest

from tasks.channels.templates import load_template
from tasks.config import PROJECT_ROOT
from tasks.errors import ConfigError, FatalApiError

FIELDS = {"customer_id": "C1", "segment": "premium", "campaign": "spring", "date": "2026-03-02"}


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
def test_bundled_templates_render(channel):
    template = load_template(PROJECT_ROOT / "config" / "templates" / f"{channel}.toml", channel)
    rendered = template.render(FIELDS)
    assert set(rendered) == {"email": {"subject", "body"}, "sms": {"body"}, "push": {"title", "body"}}[channel]
    assert "premium" in " ".join(rendered.values())
    assert "$" not in " ".join(rendered.values())


def test_literal_braces_and_dollars(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('body = "{not a field} costs $$5 for ${segment}"\n')
    assert load_template(path, "sms").render(FIELDS) == {"body": "{not a field} costs $5 for premium"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('body = "hi $first_name"\n', "unknown field"),
        ('title = "t"\n', "lacks non-empty part"),
        ('body = "50 $ off"\n', "malformed"),
        ("body = [", "not valid TOML"),
        (f'body = "{"x" * 1601}"\n', "1600"),
    ],
)
def test_bad_templates_fail_at_load(tmp_path, text, match):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_template(path, "sms")


def test_sms_over_1600_after_rendering_is_a_permanent_failure(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(f'body = "{"x" * 1580} $customer_id"\n')
    template = load_template(path, "sms")
    assert len(template.render(FIELDS)["body"]) == 1583
    with pytest.raises(FatalApiError, match="1600"):
        template.render({**FIELDS, "customer_id": "C" * 20})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_template(tmp_path / "nope.toml", "email")
