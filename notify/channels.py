"""Notification channels: which addresses each accepts, how an address is shown, and the
centre's channel settings (docs/notify-channels.md). Pure: no I/O.

| channel | address | secret |
|---|---|---|
| email | an e-mail address (ASCII, one @, a dot in the domain) | - |
| sms, voice | a phone number: an optional + and 5-20 digits | - |
| dingtalk | the custom robot's webhook URL, with `access_token` | optional, `SEC...` |
| wecom | the group robot's webhook URL, with `key` | - |
| feishu | the custom bot's webhook URL, ending `/hook/<token>` | optional |
| apprise | any URL Apprise can instantiate | - |

Robot URLs may name any http(s) host: private deployments (政务钉钉, an on-premises Feishu) and
the tests use their own. `validate` raises ChannelError, a ValueError whose message is the
reason, fit to show to whoever typed the address.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, urlsplit

import apprise

CHANNELS: tuple[str, ...] = ("email", "sms", "voice", "dingtalk", "wecom", "feishu", "apprise")
ROBOTS: tuple[str, ...] = ("dingtalk", "wecom", "feishu")
# The longest address or URL of any channel (sealed at rest; robot URLs are ~120 characters).
MAX_ADDRESS = 2000
# The longest robot signing secret (DingTalk's is "SEC" + 64 hex digits).
MAX_SECRET = 200
# notify_contacts.shown is at most 200 characters (migrations/0016_notify.sql).
MAX_SHOWN = 200
# An e-mail address is at most 254 characters (RFC 5321 path limit), its local part 64.
MAX_EMAIL = 254
MAX_LOCAL_PART = 64
# How many characters of a robot token `shown` keeps: enough to tell two robots apart.
SHOWN_TOKEN = 4
# A placeholder phone number, to check an SMS/voice URL template at start.
EXAMPLE_PHONE = "+8613800000000"
# Bounds of FIRETOWER_NOTIFY_TIMEOUT_S.
TIMEOUT_BOUNDS = (0.1, 300.0)

# Apprise's e-mail plugin imports the standard library's imghdr, deprecated since 3.11: import
# it once here, quietly, rather than warn (an error under the tests' filterwarnings) at the first
# e-mail. Python 3.13 has no imghdr and Apprise then does without it.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.suppress(ImportError):
        importlib.import_module("imghdr")

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
_PHONE = re.compile(r"\+?[0-9]{5,20}")
_TOKEN = re.compile(r"[A-Za-z0-9_.~-]+")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")
# The query parameter (or, for Feishu, the path) that carries each robot's token.
_TOKEN_PARAM = {"dingtalk": "access_token", "wecom": "key"}
_FEISHU_HOOK = re.compile(r"/hook/([A-Za-z0-9_.~-]+)/?$")


class ChannelError(ValueError):
    """An address, secret or channel setting is refused; the message says why."""


def validate(channel: str, address: str, secret: str | None = None) -> str:
    """The normalized address of `channel`, or ChannelError with the reason."""
    if channel not in CHANNELS:
        raise ChannelError(f"unknown channel {_quoted(channel)} (one of {', '.join(CHANNELS)})")
    if len(address) > MAX_ADDRESS:
        raise ChannelError(f"the address is too long ({len(address)} characters, at most {MAX_ADDRESS})")
    address = address.strip()
    if not address:
        raise ChannelError(f"the {channel} address is empty")
    _check_secret(channel, secret)
    if channel == "email":
        return _email(address)
    if channel in ("sms", "voice"):
        return _phone(address)
    if channel in ROBOTS:
        return _robot(channel, address)
    return _apprise(address)


def shown(channel: str, address: str) -> str:
    """`address` redacted for display and logs: never a robot token or an Apprise password."""
    text = address.strip()
    if channel == "email" and text.count("@") == 1:
        local, domain = text.split("@")
        text = f"{local[:1]}***@{domain}"
    elif channel in ("sms", "voice"):
        text = _shown_phone(text)
    elif channel in ROBOTS:
        text = _shown_robot(channel, text)
    elif channel == "apprise":
        text = _shown_apprise(text)
    else:
        text = "***"
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """The centre's own channel settings (read from the environment at start)."""

    smtp_url: str | None = None   # smtp://user:pass@host:25?from=centre@example.org&starttls=0
    sms_url: str | None = None    # an Apprise URL template containing "{phone}"
    voice_url: str | None = None  # likewise, a voice-call gateway
    timeout_s: float = 10.0       # one delivery attempt, connection included

    def configured(self, channel: str) -> bool:
        """Whether the centre can send over `channel` (robots and Apprise need nothing)."""
        if channel == "email":
            return self.smtp_url is not None
        if channel == "sms":
            return self.sms_url is not None
        if channel == "voice":
            return self.voice_url is not None
        return channel in CHANNELS


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """FIRETOWER_NOTIFY_SMTP_URL taken apart. `mode`: "insecure", "starttls" or "ssl" (Apprise's
    names). User and password stay percent-encoded, as written in the URL."""

    host: str
    port: int
    mode: str
    sender: str
    user: str
    password: str


def settings_from_env(env: Mapping[str, str]) -> ChannelSettings:
    """The channel settings of the environment; a malformed value raises ChannelError, so a
    misconfigured centre refuses to start rather than failing at its first fire."""
    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    smtp_url = get("FIRETOWER_NOTIFY_SMTP_URL")
    if smtp_url is not None:
        parse_smtp_url(smtp_url)
    templates: dict[str, str | None] = {}
    for channel in ("sms", "voice"):
        name = f"FIRETOWER_NOTIFY_{channel.upper()}_URL"
        template = templates[channel] = get(name)
        if template is not None:
            _check_template(name, template)
    timeout_s = 10.0
    raw = get("FIRETOWER_NOTIFY_TIMEOUT_S")
    if raw is not None:
        try:
            timeout_s = float(raw)
        except ValueError:
            raise ChannelError(f"FIRETOWER_NOTIFY_TIMEOUT_S is not a number: {_quoted(raw)}") from None
        low, high = TIMEOUT_BOUNDS
        if not (math.isfinite(timeout_s) and low <= timeout_s <= high):
            raise ChannelError(f"FIRETOWER_NOTIFY_TIMEOUT_S must be between {low} and {high} s, got {raw}")
    return ChannelSettings(smtp_url, templates["sms"], templates["voice"], timeout_s)


def parse_smtp_url(url: str) -> SmtpServer:
    """The SMTP server of `url` (smtp:// plain or STARTTLS, smtps:// implicit TLS), or
    ChannelError. The reason never repeats the password."""
    name = "FIRETOWER_NOTIFY_SMTP_URL"
    if len(url) > MAX_ADDRESS or _CONTROL.search(url):
        raise ChannelError(f"{name} is too long or has spaces or control characters")
    parts = _split(url)
    if parts is None:
        raise ChannelError(f"{name} has a malformed host or port")
    if parts.scheme not in ("smtp", "smtps"):
        raise ChannelError(f"{name} must start smtp:// or smtps://")
    host, port = parts.hostname, parts.port
    if not host:
        raise ChannelError(f"{name} names no host")
    params = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(params) - {"from", "starttls"})
    if unknown:
        raise ChannelError(f"{name}: unknown parameter(s) {', '.join(unknown)} (known: from, starttls)")
    if any(len(values) > 1 for values in params.values()):
        raise ChannelError(f"{name}: a parameter is given twice")
    sender = params.get("from", [""])[0]
    if not sender:
        raise ChannelError(f"{name} needs ?from=<the centre's e-mail address>")
    try:
        sender = _email(sender)
    except ChannelError as exc:
        raise ChannelError(f"{name}: from: {exc}") from None
    starttls = params.get("starttls", ["1"])[0].lower()
    if starttls not in ("0", "1", "false", "true", "no", "yes"):
        raise ChannelError(f"{name}: starttls must be 0 or 1, got {_quoted(starttls)}")
    if parts.scheme == "smtps":
        mode, default_port = "ssl", 465
    else:
        mode = "starttls" if starttls in ("1", "true", "yes") else "insecure"
        default_port = 587 if mode == "starttls" else 25
    user, _, password = parts.netloc.rpartition("@")[0].partition(":")
    return SmtpServer(host, port or default_port, mode, sender, user, password)


def _check_template(name: str, template: str) -> None:
    if "{phone}" not in template:
        raise ChannelError(f"{name} must contain {{phone}}, where the number goes")
    try:
        _apprise(template.replace("{phone}", EXAMPLE_PHONE))
    except ChannelError as exc:
        raise ChannelError(f"{name}: {exc}") from None


def _check_secret(channel: str, secret: str | None) -> None:
    if secret is None:
        return
    if channel not in ("dingtalk", "feishu"):
        raise ChannelError(f"{channel} contacts take no secret (only dingtalk and feishu robots sign)")
    if not secret or len(secret) > MAX_SECRET or _CONTROL.search(secret):
        raise ChannelError(f"the secret must be 1-{MAX_SECRET} characters without spaces or control characters")
    if channel == "dingtalk" and not secret.startswith("SEC"):
        raise ChannelError("a DingTalk robot secret starts with 'SEC' (copy it whole from the robot's settings)")


def _email(address: str) -> str:
    reason = f"not an e-mail address: {_quoted(address)}"
    if len(address) > MAX_EMAIL or address.count("@") != 1:
        raise ChannelError(reason)
    local, domain = address.split("@")
    labels = domain.split(".")
    if (not local or len(local) > MAX_LOCAL_PART or not _LOCAL_PART.fullmatch(local)
            or local.startswith(".") or local.endswith(".") or ".." in local
            or len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)):
        raise ChannelError(reason)
    return f"{local}@{domain.lower()}"


def _phone(address: str) -> str:
    number = address.replace(" ", "").replace("-", "")
    if not _PHONE.fullmatch(number):
        raise ChannelError(f"not a phone number: {_quoted(address)} (an optional + and 5-20 digits)")
    return number


def _robot(channel: str, address: str) -> str:
    vendor = {"dingtalk": "DingTalk robot", "wecom": "WeCom group robot", "feishu": "Feishu bot"}[channel]
    if _CONTROL.search(address):
        raise ChannelError(f"a {vendor} webhook URL has no spaces or control characters")
    parts = _split(address)
    if parts is None:
        raise ChannelError(f"the {vendor} webhook URL has a malformed host or port")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelError(f"not a {vendor} webhook URL (http:// or https:// and a host)")
    if channel == "feishu":
        if not _FEISHU_HOOK.search(parts.path):
            raise ChannelError("the Feishu bot webhook URL must end /open-apis/bot/v2/hook/<token>")
        return address
    name = _TOKEN_PARAM[channel]
    params = parse_qs(parts.query, keep_blank_values=True)
    tokens = params.get(name, [])
    if len(tokens) != 1 or not _TOKEN.fullmatch(tokens[0]):
        raise ChannelError(f"the {vendor} webhook URL must carry one {name}=<token> parameter")
    if channel == "dingtalk" and {"timestamp", "sign"} & set(params):
        raise ChannelError("remove timestamp and sign from the DingTalk URL: give the robot's secret instead")
    return address


def _split(url: str) -> SplitResult | None:
    """`url` taken apart, or None if its host or port is malformed (port 0 included)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    return None if port == 0 else parts


def _apprise(address: str) -> str:
    if _CONTROL.search(address):
        raise ChannelError("an Apprise URL has no spaces or control characters")
    schema = address.partition("://")[0].lower() if "://" in address else ""
    if not schema:
        raise ChannelError("not an Apprise URL (service://...)")
    if apprise.Apprise.instantiate(address) is None:
        if schema not in _apprise_schemas():
            raise ChannelError(f"Apprise has no service {_quoted(schema + '://')}")
        raise ChannelError(f"Apprise cannot use this {schema}:// URL (a missing or malformed part)")
    return address


@functools.cache
def _apprise_schemas() -> frozenset[str]:
    """The schemas of Apprise's services (its catalogue takes ~0.2 s to build: once)."""
    schemas: set[str] = set()
    for service in apprise.Apprise().details()["schemas"]:
        for key in ("protocols", "secure_protocols"):
            values = service.get(key) or ()
            schemas.update([values] if isinstance(values, str) else values)
    return frozenset(schemas)


def _shown_phone(number: str) -> str:
    digits = number.lstrip("+")
    plus = number[:len(number) - len(digits)]
    if len(digits) >= 9:
        return f"{plus}{digits[:-8]}****{digits[-4:]}"
    return f"{plus}{'*' * max(len(digits) - 2, 0)}{digits[-2:]}"


def _shown_robot(channel: str, address: str) -> str:
    """Scheme, host and path, and the token cut short; nothing else of the URL (a pasted
    timestamp, sign or password never shows)."""
    parts = _split(address)
    if parts is None:
        return f"{channel} (malformed URL)"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    if channel == "feishu":
        match = _FEISHU_HOOK.search(parts.path)
        token = match.group(1) if match else ""
        path = parts.path[:match.start(1)] if match else parts.path.rsplit("/", 1)[0] + "/"
        return f"{parts.scheme}://{host}{port}{path}{token[:SHOWN_TOKEN]}…"
    name = _TOKEN_PARAM[channel]
    token = parse_qs(parts.query).get(name, [""])[0]
    return f"{parts.scheme}://{host}{port}{parts.path}?{name}={token[:SHOWN_TOKEN]}…"


def _shown_apprise(address: str) -> str:
    instance = apprise.Apprise.instantiate(address) if not _CONTROL.search(address) else None
    if instance is None:
        schema = address.partition("://")[0] if "://" in address else "?"
        return f"{schema[:20]}://…"
    # Apprise's URLBase.url is not annotated. Its query is the plugin's options, long and
    # mostly defaults: the service, host and targets are what tells contacts apart.
    text: str = instance.url(privacy=True)  # type: ignore[no-untyped-call]
    return text.partition("?")[0]


def _quoted(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
