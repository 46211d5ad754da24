"""Campaign templates, chosen by name: TOML files under config/templates/<channel>/<name>.toml,
rendered with `string.Template`.

`string.Template` (`$name`, `${name}`) rather than `str.format_map` or Jinja2: braces in an
e-mail body need no escaping, and there is no attribute or index access (`{x.__class__}`), no
expression and no code, so a template can reach nothing beyond the flat mapping of strings it
is given. What personalisation needs beyond that is a default per field, declared in the
template (`[defaults] first_name = "there"`): a field that is empty for a recipient takes it,
or that recipient fails `missing_field` before any request (MissingFieldError).

Fields: `customer_id`, `segment`, `campaign`, `date`, every extra column of the segment CSV
(first_name, plan, ...) and, for e-mail with `[email_campaign] unsubscribe_url` set,
`unsubscribe_url`. A send checks at its start that each field the template uses is one of
these or has a default (a typo fails the task before anything is sent).

Parts per channel: email subject + body (text/plain) + optional `html` (text/html; every field
value is HTML-escaped in it), sms body (at most 1600 characters once rendered), push title +
body. The name comes from the send task's `template` parameter (default `[<channel>_campaign]
template`); this module reads no section itself.
"""

from __future__ import annotations

import html
import os
import re
import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import ConfigError, FatalApiError, MissingFieldError

PARTS = {"email": ("subject", "body"), "sms": ("body",), "push": ("title", "body")}
OPTIONAL_PARTS = {"email": ("html",), "sms": (), "push": ()}
FIELDS = ("customer_id", "segment", "campaign", "date")  # every send sets these
MAX_SMS_CHARS = 1600
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def template_path(templates_dir: str | os.PathLike[str], channel: str, name: str) -> Path:
    """Where template `name` of `channel` lives: <templates_dir>/<channel>/<name>.toml. A value that
    is a path (it ends in .toml or holds a /) is taken as the file itself."""
    if name.endswith(".toml") or "/" in name or os.sep in name:
        return Path(name)
    if not _NAME.match(name):
        raise ConfigError(f"{channel} template name {name!r}: use letters, digits, '_', '-' and '.'")
    return Path(templates_dir) / channel / f"{name}.toml"


@dataclass(frozen=True)
class ChannelTemplate:
    """A channel's parsed template: its parts, the fields they use, and the defaults it declares."""

    channel: str
    parts: Mapping[str, string.Template]
    defaults: Mapping[str, str]
    fields: frozenset[str]
    path: Path | None = None

    def render(self, fields: Mapping[str, str | None]) -> dict[str, str]:
        """The rendered parts for one recipient. MissingFieldError when a field is empty and has no
        default; FatalApiError when the result breaks a channel limit."""
        values: dict[str, str] = {}
        missing = []
        for name in self.fields:
            value = fields.get(name)
            if value is None or not str(value).strip():
                if name not in self.defaults:
                    missing.append(name)
                    continue
                value = self.defaults[name]
            values[name] = str(value)
        if missing:
            raise MissingFieldError(
                f"missing_field: {', '.join(sorted(missing))} empty and the template declares no default",
                code="missing_field",
            )
        escaped = {k: html.escape(v) for k, v in values.items()} if "html" in self.parts else values
        rendered = {name: tpl.substitute(escaped if name == "html" else values) for name, tpl in self.parts.items()}
        if self.channel == "sms" and len(rendered["body"]) > MAX_SMS_CHARS:
            raise FatalApiError(
                f"sms body is {len(rendered['body'])} characters once rendered, more than {MAX_SMS_CHARS}",
                code="body_too_long",
            )
        return rendered

    def check_fields(self, available: Iterable[str]) -> None:
        """ConfigError naming the fields this template uses that no recipient can have and that have
        no default (a typo, or a column the segment file lacks)."""
        unknown = sorted(self.fields - set(available) - set(self.defaults))
        if unknown:
            where = f" {self.path}" if self.path else ""
            raise ConfigError(
                f"{self.channel} template{where} uses field(s) {unknown} that the segment file does not have and "
                f"that have no default; fields available: {sorted(set(available))} (declare a default under "
                f"[defaults] or add the column)"
            )


def load_template(path: str | os.PathLike[str], channel: str) -> ChannelTemplate:
    """Parse and check the template file of `channel`; ConfigError names what is wrong."""
    if channel not in PARTS:
        raise ConfigError(f"no template parts defined for channel {channel!r}")
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{channel} template {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{channel} template {path} is not valid TOML: {exc}") from None
    missing = [p for p in PARTS[channel] if not isinstance(raw.get(p), str) or not raw[p].strip()]
    if missing:
        raise ConfigError(f"{channel} template {path} lacks non-empty part(s): {', '.join(missing)}")
    known = {*PARTS[channel], *OPTIONAL_PARTS[channel], "defaults"}
    unknown_keys = sorted(set(raw) - known)
    if unknown_keys:
        raise ConfigError(f"{channel} template {path}: unknown key(s) {unknown_keys}; expected {sorted(known)}")
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(v, str) for v in defaults.values()):
        raise ConfigError(f"{channel} template {path}: [defaults] must map field names to strings")
    names = [p for p in (*PARTS[channel], *OPTIONAL_PARTS[channel]) if p in raw]
    parts = {p: string.Template(raw[p]) for p in names}
    used: set[str] = set()
    for name, tpl in parts.items():
        if not tpl.is_valid():
            raise ConfigError(f"{channel} template {path}: part {name!r} has a malformed $placeholder")
        used.update(tpl.get_identifiers())
    template = ChannelTemplate(channel, parts, dict(defaults), frozenset(used), path)
    sample = dict.fromkeys(used, "x" * 16)
    try:
        template.render(sample)
    except FatalApiError as exc:
        raise ConfigError(f"{channel} template {path}: {exc}") from None
    return template
