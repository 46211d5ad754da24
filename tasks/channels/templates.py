"""Campaign templates: TOML files under config/templates/ rendered with `string.Template`.

`string.Template` (`$name`, `${name}`) rather than `str.format_map`: braces in an e-mail
body need no escaping, and there is no attribute or index access (`{x.__class__}`), so a
template cannot reach beyond the flat mapping it is given. Templates are checked when
loaded: every field must be known and every part present, so a typo fails the task before
the first message goes out. Parts per channel: email subject + body, sms body (at most
1600 characters once rendered), push title + body. The file is named by
`[<channel>_campaign] template`; this module reads no section itself.
"""

from __future__ import annotations

import os
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import ConfigError, FatalApiError

PARTS = {"email": ("subject", "body"), "sms": ("body",), "push": ("title", "body")}
FIELDS = ("customer_id", "segment", "campaign", "date")
MAX_SMS_CHARS = 1600


@dataclass(frozen=True)
class ChannelTemplate:
    """A channel's parsed template parts."""

    channel: str
    parts: Mapping[str, string.Template]

    def render(self, fields: Mapping[str, str]) -> dict[str, str]:
        """The rendered parts for one recipient; FatalApiError when the result breaks a channel limit."""
        rendered = {name: tpl.substitute(fields) for name, tpl in self.parts.items()}
        if self.channel == "sms" and len(rendered["body"]) > MAX_SMS_CHARS:
            raise FatalApiError(
                f"sms body is {len(rendered['body'])} characters once rendered, more than {MAX_SMS_CHARS}",
                code="body_too_long",
            )
        return rendered


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
    parts = {p: string.Template(raw[p]) for p in PARTS[channel]}
    for name, tpl in parts.items():
        if not tpl.is_valid():
            raise ConfigError(f"{channel} template {path}: part {name!r} has a malformed $placeholder")
        unknown = sorted(set(tpl.get_identifiers()) - set(FIELDS))
        if unknown:
            raise ConfigError(
                f"{channel} template {path}: part {name!r} uses unknown field(s) {unknown}; known: {list(FIELDS)}"
            )
    template = ChannelTemplate(channel, parts)
    sample = {f: "x" * 16 for f in FIELDS}
    try:
        template.render(sample)
    except FatalApiError as exc:
        raise ConfigError(f"{channel} template {path}: {exc}") from None
    return template
