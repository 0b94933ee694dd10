"""Group robots: DingTalk custom robots (钉钉自定义机器人), WeCom group robots (企业微信群机器人)
and Feishu/Lark custom bots (飞书自定义机器人). The requests and their signatures are pure
functions; `post` sends one over httpx and says, through RobotError, why it failed and whether
retrying can help (docs/notify-channels.md).

- DingTalk: POST {"msgtype": "markdown", "markdown": {"title", "text"}}; with a secret, the
  query gets `timestamp` (ms) and `sign`, the URL-encoded base64 of HMAC-SHA256 keyed by the
  secret over f"{timestamp}\\n{secret}". Success: {"errcode": 0, ...}.
- WeCom: POST {"msgtype": "markdown", "markdown": {"content"}}; no signature (the URL's key is
  the credential). Success: {"errcode": 0, ...}.
- Feishu/Lark: POST {"msg_type": "text", "content": {"text"}}; with a secret, the body gets
  "timestamp" (s, a string) and "sign", the base64 of HMAC-SHA256 keyed by
  f"{timestamp}\\n{secret}" over nothing. Success: {"code": 0, ...} (older bots:
  {"StatusCode": 0, ...}).

Apprise has plugins for these three, but they hard-code the vendor's host (no private
deployment, no local test receiver) and its Feishu plugin cannot sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

# Message size limits: WeCom's markdown content is at most 4096 bytes of UTF-8; DingTalk and
# Feishu take a request body of up to 20 KB, of which we use at most this much text.
MAX_TEXT_BYTES = {"dingtalk": 16000, "wecom": 4096, "feishu": 16000}
# A robot's answer is a small JSON object: read at most this much of it.
MAX_ANSWER_BYTES = 64 * 1024
# The longest vendor message kept in a reason.
MAX_VENDOR_MESSAGE = 200
# Vendor codes that mean "busy or too fast, try again later"; every other non-zero code (a
# rejected token or signature, a missing keyword, a closed group, ...) is permanent.
# DingTalk: -1 system busy, 130101 and 410100 sending too fast (20 messages a minute per robot).
# WeCom: -1 system busy, 45009 API frequency limit. Feishu: 11232 frequency limited.
TRANSIENT_CODES: dict[str, frozenset[int]] = {
    "dingtalk": frozenset({-1, 130101, 410100}),
    "wecom": frozenset({-1, 45009}),
    "feishu": frozenset({11232}),
}


class RobotError(Exception):
    """A robot message was not delivered. `permanent`: retrying cannot help. The message is
    the reason, without the robot's token or secret."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class RobotRequest:
    """One POST: the URL (signed, for DingTalk) and the JSON body."""

    url: str
    payload: dict[str, Any]

    def content(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False).encode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64 of HMAC-SHA256 keyed by the secret over "timestamp\\nsecret"
    (not yet URL-encoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature: base64 of HMAC-SHA256 keyed by "timestamp\\nsecret" over nothing."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def dingtalk_request(url: str, secret: str | None, subject: str, body: str, now: float) -> RobotRequest:
    text = clip(f"#### {subject}\n\n{body}".replace("\n", "  \n"), MAX_TEXT_BYTES["dingtalk"])
    payload = {"msgtype": "markdown", "markdown": {"title": clip(subject, 200), "text": text}}
    if secret is not None:
        timestamp = int(now * 1000)
        parts = urlsplit(url)
        extra = f"timestamp={timestamp}&sign={quote(dingtalk_sign(secret, timestamp), safe='')}"
        url = urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))
    return RobotRequest(url, payload)


def wecom_request(url: str, subject: str, body: str) -> RobotRequest:
    content = clip(f"**{subject}**\n{body}", MAX_TEXT_BYTES["wecom"])
    return RobotRequest(url, {"msgtype": "markdown", "markdown": {"content": content}})


def feishu_request(url: str, secret: str | None, subject: str, body: str, now: float) -> RobotRequest:
    payload: dict[str, Any] = {"msg_type": "text",
                               "content": {"text": clip(f"{subject}\n{body}", MAX_TEXT_BYTES["feishu"])}}
    if secret is not None:
        timestamp = int(now)
        payload["timestamp"] = str(timestamp)
        payload["sign"] = feishu_sign(secret, timestamp)
    return RobotRequest(url, payload)


def robot_request(channel: str, url: str, secret: str | None, subject: str, body: str,
                  now: float) -> RobotRequest:
    if channel == "dingtalk":
        return dingtalk_request(url, secret, subject, body, now)
    if channel == "wecom":
        return wecom_request(url, subject, body)
    if channel == "feishu":
        return feishu_request(url, secret, subject, body, now)
    raise ValueError(f"not a robot channel: {channel!r}")


def check_answer(channel: str, status: int, raw: bytes) -> None:
    """Nothing if the robot took the message; else RobotError, permanent unless the status
    (408, 429, 5xx) or the vendor's code says to try again later."""
    if not 200 <= status < 300:
        detail = _vendor_message(channel, _json_object(raw) or {})
        permanent = not (status in (408, 429) or status >= 500)
        raise RobotError(f"{channel} answered HTTP {status}{detail}", permanent=permanent)
    answer = _json_object(raw)
    if answer is None:
        raise RobotError(f"{channel} answered HTTP {status} with no JSON object", permanent=False)
    if channel == "feishu":
        key = "code" if "code" in answer else "StatusCode"
    else:
        key = "errcode"
    code = answer.get(key)
    if code == 0:
        return
    if not isinstance(code, int) or isinstance(code, bool):
        raise RobotError(f"{channel} answered without a numeric {key}", permanent=False)
    permanent = code not in TRANSIENT_CODES[channel]
    raise RobotError(f"{channel} refused the message: {key} {code}{_vendor_message(channel, answer)}",
                     permanent=permanent)


async def post(client: httpx.AsyncClient, channel: str, url: str, secret: str | None, subject: str,
               body: str, *, timeout_s: float, clock: Callable[[], float] = time.time) -> None:
    """Send one message to the robot at `url`; RobotError if it was not taken."""
    request = robot_request(channel, url, secret, subject, body, clock())
    hidden = [s for s in (_token(channel, url), secret) if s]
    try:
        async with client.stream("POST", request.url, content=request.content(), timeout=timeout_s,
                                 headers={"Content-Type": "application/json; charset=utf-8"}) as response:
            raw = b""
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    break
            status = response.status_code
    except httpx.TimeoutException:
        raise RobotError(f"{channel}: timed out after {timeout_s:g} s", permanent=False) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise RobotError(scrub(f"{channel}: unusable URL: {exc}", hidden), permanent=True) from None
    except httpx.ConnectError as exc:
        raise RobotError(scrub(f"{channel}: connection failed: {exc}", hidden), permanent=False) from None
    except httpx.TransportError as exc:
        raise RobotError(scrub(f"{channel}: connection broken: {type(exc).__name__}: {exc}", hidden),
                         permanent=False) from None
    try:
        check_answer(channel, status, raw[:MAX_ANSWER_BYTES])
    except RobotError as exc:
        raise RobotError(scrub(exc.reason, hidden), permanent=exc.permanent) from None


def clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, on a character boundary, marked with …"""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes - 3].decode(errors="ignore") + "…"


def scrub(text: str, hidden: list[str]) -> str:
    """`text` without any of `hidden` (tokens, secrets) in it."""
    for value in hidden:
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def _token(channel: str, url: str) -> str:
    parts = urlsplit(url)
    if channel == "feishu":
        return parts.path.rstrip("/").rsplit("/", 1)[-1]
    name = "access_token=" if channel == "dingtalk" else "key="
    for pair in parts.query.split("&"):
        if pair.startswith(name):
            return pair[len(name):]
    return ""


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return answer if isinstance(answer, dict) else None


def _vendor_message(channel: str, answer: dict[str, Any]) -> str:
    keys = ("msg", "StatusMessage") if channel == "feishu" else ("errmsg",)
    for key in keys:
        message = answer.get(key)
        if isinstance(message, str) and message:
            cleaned = "".join(c if c.isprintable() else " " for c in message)[:MAX_VENDOR_MESSAGE]
            return f" ({cleaned})"
    return ""
