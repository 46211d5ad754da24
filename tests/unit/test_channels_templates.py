"""Campaign templates: chosen by name, rendering, defaults, missing fields, HTML escaping, load-time checks,
the SMS length limit."""

from __future__ import annotations

import pytest

from tasks.channels.templates import load_template, template_path
from tasks.config import PROJECT_ROOT
from tasks.errors import ConfigError, FatalApiError, MissingFieldError

FIELDS = {"customer_id": "C1", "segment": "premium", "campaign": "spring", "date": "2026-03-02"}


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
def test_bundled_templates_render(channel):
    path = template_path(PROJECT_ROOT / "config" / "templates", channel, "demo")
    assert path == PROJECT_ROOT / "config" / "templates" / channel / "demo.toml"
    template = load_template(path, channel)
    rendered = template.render({**FIELDS, "first_name": "Ann"})
    assert set(rendered) == {"email": {"subject", "body", "html"}, "sms": {"body"}, "push": {"title", "body"}}[channel]
    assert "premium" in " ".join(rendered.values())
    assert "$" not in " ".join(rendered.values())
    if channel != "push":
        assert "Hi Ann," in rendered["body"]
        assert "Hi there," in template.render({**FIELDS, "first_name": None})["body"]  # the declared default


def test_a_name_is_a_file_under_the_channel_folder_and_a_path_stays_a_path(tmp_path):
    assert template_path(tmp_path, "sms", "spring-sale") == tmp_path / "sms" / "spring-sale.toml"
    assert template_path(tmp_path, "sms", "other/x.toml") == tmp_path.__class__("other/x.toml")
    with pytest.raises(ConfigError, match="template name"):
        template_path(tmp_path, "sms", "..")


def test_empty_fields_take_the_default_or_fail_missing_field(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('body = "Hi ${first_name}, your $plan plan"\n[defaults]\nfirst_name = "there"\n')
    template = load_template(path, "sms")
    assert template.render({**FIELDS, "first_name": "Ann", "plan": "gold"})["body"] == "Hi Ann, your gold plan"
    assert template.render({**FIELDS, "first_name": "  ", "plan": "gold"})["body"] == "Hi there, your gold plan"
    with pytest.raises(MissingFieldError, match="missing_field: plan") as info:
        template.render({**FIELDS, "first_name": "Ann", "plan": None})
    assert info.value.code == "missing_field"
    template.check_fields({*FIELDS, "plan"})  # first_name has a default: a column is not needed
    with pytest.raises(ConfigError, match=r"\['plan'\]"):
        template.check_fields(set(FIELDS))


def test_html_part_escapes_field_values_and_the_text_part_does_not(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('subject = "Hi $first_name"\nbody = "Hi $first_name"\nhtml = "<p>Hi $first_name</p>"\n')
    rendered = load_template(path, "email").render({"first_name": "<script>x</script> & Co"})
    assert rendered["html"] == "<p>Hi &lt;script&gt;x&lt;/script&gt; &amp; Co</p>"
    assert rendered["body"] == "Hi <script>x</script> & Co"


def test_no_attribute_access_or_code_reaches_a_value(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('body = "{customer_id.__class__} ${customer_id} {0}"\n')
    assert load_template(path, "sms").render(FIELDS)["body"] == "{customer_id.__class__} C1 {0}"
    path.write_text('body = "${customer_id.__class__}"\n')
    with pytest.raises(ConfigError, match="malformed"):
        load_template(path, "sms")


def test_literal_braces_and_dollars(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('body = "{not a field} costs $$5 for ${segment}"\n')
    assert load_template(path, "sms").render(FIELDS) == {"body": "{not a field} costs $5 for premium"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('body = "hi"\nsubject = "x"\n', "unknown key"),
        ('body = "hi"\n[defaults]\nx = 1\n', "must map field names to strings"),
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
