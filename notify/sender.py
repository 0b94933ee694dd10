"""One delivery attempt over one channel: the I/O edge of notify/ (docs/notify-channels.md).

`send` never raises (but for cancellation): the outbox records every attempt, so each ends as
an Outcome that says whether it went, and if not, why and whether retrying can help.

- email: Apprise's e-mail plugin, through the centre's SMTP server (FIRETOWER_NOTIFY_SMTP_URL);
- sms, voice: the gateway's Apprise URL template with the number filled in;
- apprise: the contact's own Apprise URL;
- dingtalk, wecom, feishu: notify/robots.py over httpx.

Apprise blocks and answers only True or False: it runs on a thread of the send pool, bounded by the
settings' timeout (its socket timeouts too, so the thread does not outlive the attempt by
much), and the reason is read from its log, per thread (`_AppriseLog`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode, urlsplit

import apprise
import httpx

from notify import robots
from notify.channels import CHANNELS, ROBOTS, ChannelError, ChannelSettings, parse_smtp_url, validate

log = logging.getLogger(__name__)

# The longest reason an Outcome carries (notify_attempts.error, notify_messages.last_error).
MAX_ERROR = 500
# HTTP statuses after which a retry may succeed; every other 4xx is permanent.
RETRYABLE_STATUS = (408, 429)
# Which setting configures each gateway channel (named in the "not configured" reason).
SETTING = {"email": "FIRETOWER_NOTIFY_SMTP_URL", "sms": "FIRETOWER_NOTIFY_SMS_URL",
           "voice": "FIRETOWER_NOTIFY_VOICE_URL"}
# Apprise's reasons: an HTTP plugin's "error=<status>", an SMTP reply code in smtplib's errors.
_HTTP_STATUS = re.compile(r"error=(\d{3})\b")
_SMTP_PERMANENT = re.compile(r"\(5\d\d, b?['\"]")
# requests' connection errors repeat the URL's path and query, which can hold tokens.
_REQUEST_URL = re.compile(r"(with url: )\S+")


# Apprise blocks: its sends run on threads of their own, as many as the notifier keeps in flight
# (`use_threads`), so that a send never waits for a thread inside its own timeout (asyncio's
# default pool has min(32, CPUs + 4) threads: 6 on two CPUs).
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 32


def use_threads(n: int) -> None:
    """Size the send threads to the messages in flight (the notifier calls it at start)."""
    global _POOL, _POOL_SIZE
    _POOL_SIZE = max(1, n)
    if _POOL is not None:
        _POOL.shutdown(wait=False)
        _POOL = None


def _threads() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="notify-send")
    return _POOL


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt. `permanent`: retrying cannot help (a bad address, a token or
    signature refused, a 4xx other than 408/429) - dead-letter it now."""

    ok: bool
    permanent: bool
    error: str | None
    duration_ms: float


async def send(channel: str, address: str, secret: str | None, subject: str, body: str,
               settings: ChannelSettings, *, client: httpx.AsyncClient | None = None) -> Outcome:
    """Send `subject` and `body` to `address` over `channel`, once."""
    started = time.perf_counter()
    try:
        ok, permanent, error = await _attempt(channel, address, secret, subject, body, settings, client)
    except Exception as exc:  # an attempt always ends as an Outcome, whatever a library raised
        log.exception("notify: %s delivery failed unexpectedly", channel)
        ok, permanent, error = False, False, f"{channel}: unexpected {type(exc).__name__}"
    if error is not None and len(error) > MAX_ERROR:
        error = error[:MAX_ERROR - 1] + "…"
    return Outcome(ok, permanent, error, (time.perf_counter() - started) * 1000.0)


Result = tuple[bool, bool, str | None]


async def _attempt(channel: str, address: str, secret: str | None, subject: str, body: str,
                   settings: ChannelSettings, client: httpx.AsyncClient | None) -> Result:
    if channel not in CHANNELS:
        return False, True, f"unknown channel {channel!r}"
    if not settings.configured(channel):
        return False, True, f"{channel} not configured ({SETTING[channel]})"
    # An Apprise URL is checked in the worker thread: Apprise loads its plugins, blocking.
    if channel != "apprise":
        try:
            address = validate(channel, address, secret)
        except ChannelError as exc:
            return False, True, str(exc)
    timeout_s = settings.timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            if channel in ROBOTS:
                return await _robot(channel, address, secret, subject, body, timeout_s, client)
            url, hidden = _apprise_url(channel, address, settings)
            return await asyncio.get_running_loop().run_in_executor(
                _threads(), _notify, url, hidden, subject, body, timeout_s)
    except TimeoutError:
        return False, False, f"{channel}: timed out after {timeout_s:g} s"


async def _robot(channel: str, address: str, secret: str | None, subject: str, body: str,
                 timeout_s: float, client: httpx.AsyncClient | None) -> Result:
    try:
        if client is None:
            async with httpx.AsyncClient() as own:
                await robots.post(own, channel, address, secret, subject, body, timeout_s=timeout_s)
        else:
            await robots.post(client, channel, address, secret, subject, body, timeout_s=timeout_s)
    except robots.RobotError as exc:
        return False, exc.permanent, exc.reason
    return True, False, None


def _apprise_url(channel: str, address: str, settings: ChannelSettings) -> tuple[str, list[str]]:
    """The Apprise URL that reaches `address` over `channel` (configured, validated), and what
    of it must not appear in a reason."""
    if channel == "email":
        assert settings.smtp_url is not None
        smtp = parse_smtp_url(settings.smtp_url)
        auth = f"{smtp.user}:{smtp.password}@" if smtp.password else f"{smtp.user}@" if smtp.user else ""
        host = f"[{smtp.host}]" if ":" in smtp.host else smtp.host
        query = urlencode({"smtp": smtp.host, "mode": smtp.mode, "from": smtp.sender, "to": address,
                           "format": "text"})
        # mailto:// is Apprise's plain SMTP; mailtos:// with mode=starttls or mode=ssl its TLS.
        schema = "mailto" if smtp.mode == "insecure" else "mailtos"
        hidden = [p for p in (smtp.password, unquote(smtp.password)) if len(p) >= 4]
        return f"{schema}://{auth}{host}:{smtp.port}/?{query}", hidden
    if channel in ("sms", "voice"):
        template = settings.sms_url if channel == "sms" else settings.voice_url
        assert template is not None
        url = template.replace("{phone}", quote(address, safe=""))
        return url, _url_secrets(url)
    return address, _url_secrets(address)


def _notify(url: str, hidden: list[str], subject: str, body: str, timeout_s: float) -> Result:
    """One Apprise notification (blocking: run in a worker thread)."""
    with _apprise_log().lines() as lines:
        instance = apprise.Apprise.instantiate(url)
        if instance is None:
            return False, True, "Apprise cannot use this URL (see notify/channels.validate)"
        instance.socket_connect_timeout = timeout_s
        instance.socket_read_timeout = timeout_s
        ok = instance.notify(body=body or subject or "-", title=subject)
    if ok:
        return True, False, None
    reason = "; ".join(dict.fromkeys(lines)) or "Apprise reported a failure without a reason"
    return False, _permanent(reason), robots.scrub(_REQUEST_URL.sub(r"\1…", reason), hidden)


def _permanent(reason: str) -> bool:
    """Whether Apprise's reason says retrying cannot help: an HTTP 4xx other than 408/429, or a
    permanent SMTP reply (5xx: recipient, sender or credentials refused)."""
    statuses = [int(s) for s in _HTTP_STATUS.findall(reason)]
    if any(400 <= s < 500 and s not in RETRYABLE_STATUS for s in statuses):
        return True
    return bool(_SMTP_PERMANENT.search(reason))


def _url_secrets(url: str) -> list[str]:
    """The parts of an Apprise URL that may be credentials: user and password, a host that is
    not a name with dots (tgram://<bot token>/...), path segments and query values (the short
    ones are words such as "sms", not tokens)."""
    try:
        parts = urlsplit(url)
        values = [parts.password or ""]
    except ValueError:  # a malformed URL, which Apprise will refuse
        return [url]
    values += [unquote(s) for s in parts.path.split("/")]
    values += [unquote(pair.partition("=")[2]) for pair in parts.query.split("&")]
    userinfo, _, hostport = parts.netloc.rpartition("@")
    values += [userinfo, *userinfo.split(":")]
    if "." not in hostport:
        values += [hostport, *hostport.split(":")]
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


class _AppriseLog(logging.Filter):
    """Apprise says why a notification failed only in its log (the "apprise" logger). This
    filter on that logger keeps, for each thread that is sending, its warnings and socket
    errors; records pass on to the process's handlers as they would without it. Apprise's own
    LogCapture collects every thread's records, so concurrent sends would mix their reasons."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._own_level = logger.level
        self._threads: dict[int, list[str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        lines = self._threads.get(record.thread or 0)
        if lines is not None and (record.levelno >= logging.WARNING or (
                isinstance(record.msg, str) and record.msg.startswith("Socket Exception"))):
            lines.append(record.getMessage())
        return record.levelno >= self._passthrough()

    def _passthrough(self) -> int:
        if self._own_level != logging.NOTSET:
            return self._own_level
        parent = self._logger.parent
        return parent.getEffectiveLevel() if parent is not None else logging.WARNING

    @contextmanager
    def lines(self) -> Iterator[list[str]]:
        """The calling thread's lines, collected while inside `with`."""
        ident = threading.get_ident()
        lines: list[str] = []
        self._threads[ident] = lines
        try:
            yield lines
        finally:
            del self._threads[ident]


_install = threading.Lock()
_installed: list[_AppriseLog] = []


def _apprise_log() -> _AppriseLog:
    """The filter, installed on first use: Apprise's logger then lets DEBUG records reach it
    (the socket error is a DEBUG record), and the filter passes on only what would have
    passed before."""
    with _install:
        if not _installed:
            logger = logging.getLogger("apprise")
            capture = _AppriseLog(logger)
            logger.addFilter(capture)
            logger.setLevel(logging.DEBUG)
            _installed.append(capture)
        return _installed[0]
