"""Real receivers for the notification tests: an HTTP server (standard library, in a thread on
a loopback port) that plays DingTalk's, WeCom's and Feishu's robot endpoints, checking each
request against the vendors' documented payloads and signature formulas (recomputed here, not
taken from notify/robots.py) and answering as the vendor would; and a plain JSON endpoint for
Apprise's json:// service. And `smtp_server`, aiosmtpd's SMTP server on a loopback port.

Paths: /robot/send?access_token= (DingTalk), /cgi-bin/webhook/send?key= (WeCom),
/open-apis/bot/v2/hook/<token> (Feishu), /json/<anything> (Apprise json://), and
/status/<code>/... which answers that HTTP status. /slow/... answers after SLOW_S.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

from firetower.broker import free_port

# Vendors refuse a signature whose timestamp is more than an hour off.
SIGN_WINDOW_S = 3600
SLOW_S = 2.0


@dataclass
class Received:
    vendor: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    problems: list[str] = field(default_factory=list)


@dataclass
class Robots:
    """The robots this receiver plays: their tokens and signing secrets (None: unsigned)."""

    dingtalk_token: str = "dt0123456789abcdef0123456789abcdef"
    dingtalk_secret: str | None = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
    wecom_key: str = "693a91f6-7aaa-4bc4-97a0-0ec2bcfa5aaa"
    feishu_token: str = "f19a8a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    feishu_secret: str | None = "zs0TqTvHfB8JYh2P3QxJ4d"
    received: list[Received] = field(default_factory=list)


def dingtalk_expected_sign(secret: str, timestamp: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), digestmod=hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def feishu_expected_sign(secret: str, timestamp: str) -> str:
    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", digestmod=hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _fresh(timestamp: str, scale: int) -> bool:
    return timestamp.isdigit() and abs(int(timestamp) / scale - time.time()) <= SIGN_WINDOW_S


def check_dingtalk(robots: Robots, rec: Received) -> dict[str, Any]:
    if rec.query.get("access_token") != [robots.dingtalk_token]:
        token = rec.query.get("access_token", [""])[0]
        return {"errcode": 300001, "errmsg": f"token is not exist: {token}"}
    body = rec.body
    if not (isinstance(body, dict) and body.get("msgtype") == "markdown"
            and isinstance(body.get("markdown"), dict)
            and isinstance(body["markdown"].get("title"), str) and isinstance(body["markdown"].get("text"), str)):
        rec.problems.append(f"not a DingTalk markdown message: {body!r}")
        return {"errcode": 40035, "errmsg": "缺少参数 json"}
    if robots.dingtalk_secret is not None:
        timestamp = rec.query.get("timestamp", [""])[0]
        sign = rec.query.get("sign", [""])[0]   # parse_qs has URL-decoded it once
        if not _fresh(timestamp, 1000) or sign != dingtalk_expected_sign(robots.dingtalk_secret, timestamp):
            return {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}
    return {"errcode": 0, "errmsg": "ok"}


def check_wecom(robots: Robots, rec: Received) -> dict[str, Any]:
    if rec.query.get("key") != [robots.wecom_key]:
        return {"errcode": 93000, "errmsg": "invalid webhook url, hint: [1700000000_1_abc]"}
    body = rec.body
    if not (isinstance(body, dict) and body.get("msgtype") == "markdown"
            and isinstance(body.get("markdown"), dict) and isinstance(body["markdown"].get("content"), str)):
        rec.problems.append(f"not a WeCom markdown message: {body!r}")
        return {"errcode": 40008, "errmsg": "invalid message type"}
    if len(body["markdown"]["content"].encode()) > 4096:
        rec.problems.append("WeCom markdown content over 4096 bytes")
        return {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
    return {"errcode": 0, "errmsg": "ok"}


def check_feishu(robots: Robots, rec: Received) -> dict[str, Any]:
    token = rec.path.rsplit("/", 1)[-1]
    if token != robots.feishu_token:
        return {"code": 19001, "msg": "param invalid: incoming webhook access token invalid", "data": {}}
    body = rec.body
    if not (isinstance(body, dict) and body.get("msg_type") == "text"
            and isinstance(body.get("content"), dict) and isinstance(body["content"].get("text"), str)):
        rec.problems.append(f"not a Feishu text message: {body!r}")
        return {"code": 9499, "msg": "Bad Request", "data": {}}
    if robots.feishu_secret is not None:
        timestamp, sign = body.get("timestamp"), body.get("sign")
        if not (isinstance(timestamp, str) and isinstance(sign, str) and _fresh(timestamp, 1)
                and sign == feishu_expected_sign(robots.feishu_secret, timestamp)):
            return {"code": 19021, "data": {},
                    "msg": "sign match fail or timestamp is not within one hour from current time"}
    return {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        segments = parts.path.split("/")
        robots = self.server.robots
        if parts.path.startswith("/slow/"):
            time.sleep(SLOW_S)
        vendor = ("dingtalk" if parts.path.endswith("/robot/send") else
                  "wecom" if parts.path.endswith("/cgi-bin/webhook/send") else
                  "feishu" if "/open-apis/bot/v2/hook/" in parts.path else "json")
        rec = Received(vendor, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
        robots.received.append(rec)
        if len(segments) > 2 and segments[1] == "status":
            self._answer(int(segments[2]), {"errcode": -1, "errmsg": "status asked for"})
            return
        if "json" not in self.headers.get("Content-Type", ""):
            rec.problems.append(f"Content-Type {self.headers.get('Content-Type')!r}")
        checks = {"dingtalk": check_dingtalk, "wecom": check_wecom, "feishu": check_feishu}
        answer = checks[vendor](robots, rec) if vendor in checks else {}
        self._answer(200, answer)

    def _answer(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, robots: Robots) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.robots = robots


class Receiver:
    """The HTTP receiver, running in a thread until `close()` (or the end of `with`)."""

    def __init__(self, robots: Robots | None = None) -> None:
        self.robots = robots or Robots()
        self._server = _Server(self.robots)
        self.port: int = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="robot-receiver",
                                        daemon=True)
        self._thread.start()

    def dingtalk_url(self, prefix: str = "") -> str:
        return f"{self.base}{prefix}/robot/send?access_token={self.robots.dingtalk_token}"

    def wecom_url(self, prefix: str = "") -> str:
        return f"{self.base}{prefix}/cgi-bin/webhook/send?key={self.robots.wecom_key}"

    def feishu_url(self, prefix: str = "") -> str:
        return f"{self.base}{prefix}/open-apis/bot/v2/hook/{self.robots.feishu_token}"

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def smtp_server(handler: object) -> Iterator[int]:
    """aiosmtpd's SMTP server, calling `handler`'s handle_RCPT/handle_DATA hooks, on a free
    loopback port (yielded) while inside `with`."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
