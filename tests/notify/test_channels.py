"""notify/channels.py, robots.py and sender.py against real receivers: an SMTP server
(aiosmtpd on a loopback port), and HTTP endpoints playing DingTalk, WeCom and Feishu robots that
check the documented payloads and recompute the signatures (tests/notify/receivers.py), plus
Apprise's json:// service for the SMS gateway and Apprise contacts. No sender is mocked."""

from __future__ import annotations

import email
import email.policy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firetower.broker import free_port
from notify.channels import (
    CHANNELS,
    ROBOTS,
    ChannelError,
    ChannelSettings,
    settings_from_env,
    shown,
    validate,
)
from notify.sender import Outcome, send
from tests.notify.receivers import SLOW_S, Receiver, Robots, smtp_server

SUBJECT = "【火警】XX小区3号楼 烟感报警"
BODY = "设备 SD-0042 于 14:05 报警。\n地址:幸福路 12 号 3 单元 502\n请立即确认。"


# -- validate ---------------------------------------------------------------------------------

DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=50cb6e954c89afa14fb97754eafd886d"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2bcfa5aaa"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/f19a8a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(("channel", "address", "secret", "normalized"), [
    ("email", " Zhang.San@Example.COM ", None, "Zhang.San@example.com"),
    ("email", "duty+fire@xx-county.gov.cn", None, "duty+fire@xx-county.gov.cn"),
    ("sms", "+86 138-1234-5678", None, "+8613812345678"),
    ("voice", "13812345678", None, "13812345678"),
    ("dingtalk", DINGTALK, None, DINGTALK),
    ("dingtalk", DINGTALK, "SEC" + "a" * 64, DINGTALK),
    ("dingtalk", "http://10.1.2.3:8080/robot/send?access_token=abc123", None,
     "http://10.1.2.3:8080/robot/send?access_token=abc123"),
    ("wecom", WECOM, None, WECOM),
    ("feishu", FEISHU, None, FEISHU),
    ("feishu", FEISHU, "zs0TqTvHfB8JYh2P3QxJ4d", FEISHU),
    ("feishu", "https://open.larksuite.com/open-apis/bot/v2/hook/abc-123", None,
     "https://open.larksuite.com/open-apis/bot/v2/hook/abc-123"),
    ("apprise", "json://localhost:8080/alarms", None, "json://localhost:8080/alarms"),
    ("apprise", "tgram://123456789:AAbbCCddEEff/-100123456", None, "tgram://123456789:AAbbCCddEEff/-100123456"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_good_addresses(channel: str, address: str, secret: str | None, normalized: str) -> None:
    assert validate(channel, address, secret) == normalized


@pytest.mark.parametrize(("channel", "address", "secret", "reason"), [
    ("email", "abc", None, "not an e-mail address: 'abc'"),
    ("email", "a@b", None, "not an e-mail address"),
    ("email", "a@@b.cn", None, "not an e-mail address"),
    ("email", "a b@c.cn", None, "not an e-mail address"),
    ("email", "x@y.cn,z@w.cn", None, "not an e-mail address"),
    ("email", "a" * 250 + "@b.cn", None, "not an e-mail address"),
    ("email", "", None, "the email address is empty"),
    ("email", "a@b.cn", "s3cret", "email contacts take no secret"),
    ("sms", "1234", None, "not a phone number: '1234'"),
    ("sms", "+86 138 1234 567a", None, "not a phone number"),
    ("voice", "1" * 21, None, "not a phone number"),
    ("dingtalk", "https://oapi.dingtalk.com/robot/send", None, "must carry one access_token=<token>"),
    ("dingtalk", "ftp://oapi.dingtalk.com/robot/send?access_token=abc", None, "http:// or https://"),
    ("dingtalk", DINGTALK, "abc", "starts with 'SEC'"),
    ("dingtalk", DINGTALK + "&timestamp=1&sign=x", "SECabc", "remove timestamp and sign"),
    ("dingtalk", DINGTALK + " x", None, "no spaces or control characters"),
    ("dingtalk", "http://[abc/robot/send?access_token=abc", None, "malformed host or port"),
    ("dingtalk", "http://h:0/robot/send?access_token=abc", None, "malformed host or port"),
    ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?token=abc", None, "one key=<token>"),
    ("wecom", WECOM, "SECabc", "wecom contacts take no secret"),
    ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/", None, "/open-apis/bot/v2/hook/<token>"),
    ("feishu", "open.feishu.cn/open-apis/bot/v2/hook/abc", None, "http:// or https://"),
    ("apprise", "not a url", None, "no spaces or control characters"),
    ("apprise", "nosuchservice://host/x", None, "Apprise has no service 'nosuchservice://'"),
    ("apprise", "tgram://", None, "Apprise cannot use this tgram:// URL"),
    ("apprise", "json://" + "a" * 2000, None, "too long"),
    ("pigeon", "x", None, "unknown channel 'pigeon'"),
])
def test_bad_addresses(channel: str, address: str, secret: str | None, reason: str) -> None:
    with pytest.raises(ChannelError, match=None) as caught:
        validate(channel, address, secret)
    assert reason in str(caught.value)


@pytest.mark.parametrize(("channel", "address", "expected"), [
    ("email", "zhang.san@example.com", "z***@example.com"),
    ("sms", "13812345678", "138****5678"),
    ("voice", "+8613812345678", "+86138****5678"),
    ("dingtalk", DINGTALK, "https://oapi.dingtalk.com/robot/send?access_token=50cb…"),
    ("wecom", WECOM, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a…"),
    ("feishu", FEISHU, "https://open.feishu.cn/open-apis/bot/v2/hook/f19a…"),
    ("apprise", "json://user:topsecret@localhost:8080/alarms", "json://user:****@localhost:8080/alarms"),
])
def test_shown(channel: str, address: str, expected: str) -> None:
    assert shown(channel, address) == expected


ARBITRARY_URLS = st.builds("{}://{}{}".format,
                           st.sampled_from(["json", "mailto", "tgram", "https", "dingtalk", "feishu", "x"]),
                           st.sampled_from(["", "[", "[::1", "u:p@", "h:", "h:0", "h:99999"]),
                           st.text(max_size=80))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel=st.sampled_from([*CHANNELS, "", "EMAIL"]), address=st.text(max_size=300) | ARBITRARY_URLS,
       secret=st.none() | st.text(max_size=80))
def test_validate_refuses_only_with_channel_error(channel: str, address: str, secret: str | None) -> None:
    try:
        normalized = validate(channel, address, secret)
    except ChannelError as exc:
        assert str(exc)
        return
    assert validate(channel, normalized, secret) == normalized  # idempotent
    assert len(shown(channel, normalized)) <= 200


TOKENS = st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True)
HOSTS = st.sampled_from(["oapi.dingtalk.com", "qyapi.weixin.qq.com", "open.feishu.cn", "10.0.0.7:8443",
                         "robot.zwding.example.gov.cn"])


@settings(max_examples=200, deadline=None)
@given(channel=st.sampled_from(ROBOTS), host=HOSTS, token=TOKENS, pasted=TOKENS)
def test_shown_never_holds_a_robot_token_or_secret(channel: str, host: str, token: str, pasted: str) -> None:
    # `pasted`: a secret someone pasted into the URL as an extra parameter, and a password.
    url = {"dingtalk": f"https://u:{pasted}@{host}/robot/send?access_token={token}&x={pasted}",
           "wecom": f"https://{host}/cgi-bin/webhook/send?key={token}&secret={pasted}",
           "feishu": f"https://u:{pasted}@{host}/open-apis/bot/v2/hook/{token}"}[channel]
    text = shown(channel, validate(channel, url))
    assert token not in text and pasted not in text
    assert token[:4] in text


# -- settings ---------------------------------------------------------------------------------

def test_settings_from_env() -> None:
    assert settings_from_env({}) == ChannelSettings()
    s = settings_from_env({"FIRETOWER_NOTIFY_SMTP_URL": "smtps://u:p@mail.example.org?from=centre@example.org",
                           "FIRETOWER_NOTIFY_SMS_URL": "json://gw.example.org/sms/{phone}",
                           "FIRETOWER_NOTIFY_VOICE_URL": " ",
                           "FIRETOWER_NOTIFY_TIMEOUT_S": "2.5"})
    assert s.timeout_s == 2.5 and s.voice_url is None
    assert [c for c in CHANNELS if not s.configured(c)] == ["voice"]
    assert not ChannelSettings().configured("email") and not ChannelSettings().configured("pigeon")


@pytest.mark.parametrize(("env", "reason"), [
    ({"FIRETOWER_NOTIFY_SMTP_URL": "smtp://mail.example.org"}, "needs ?from="),
    ({"FIRETOWER_NOTIFY_SMTP_URL": "http://mail.example.org?from=a@b.cn"}, "must start smtp:// or smtps://"),
    ({"FIRETOWER_NOTIFY_SMTP_URL": "smtp://m.example.org?from=a@b.cn&tls=0"}, "unknown parameter(s) tls"),
    ({"FIRETOWER_NOTIFY_SMTP_URL": "smtp://m.example.org?from=a@b.cn&starttls=maybe"}, "starttls must be 0 or 1"),
    ({"FIRETOWER_NOTIFY_SMTP_URL": "smtp://m.example.org:99999?from=a@b.cn"}, "malformed host or port"),
    ({"FIRETOWER_NOTIFY_SMTP_URL": "smtp://[m.example.org?from=a@b.cn"}, "malformed host or port"),
    ({"FIRETOWER_NOTIFY_SMTP_URL": "smtp://u:p4ss@m.example.org?from=nobody"}, "from: not an e-mail address"),
    ({"FIRETOWER_NOTIFY_SMS_URL": "json://gw.example.org/sms"}, "must contain {phone}"),
    ({"FIRETOWER_NOTIFY_VOICE_URL": "nosuch://gw/{phone}"}, "FIRETOWER_NOTIFY_VOICE_URL: Apprise has no service"),
    ({"FIRETOWER_NOTIFY_TIMEOUT_S": "soon"}, "not a number"),
    ({"FIRETOWER_NOTIFY_TIMEOUT_S": "0"}, "between"),
    ({"FIRETOWER_NOTIFY_TIMEOUT_S": "nan"}, "between"),
])
def test_malformed_settings_refuse_to_start(env: dict[str, str], reason: str) -> None:
    with pytest.raises(ChannelError) as caught:
        settings_from_env(env)
    assert reason in str(caught.value)
    assert "p4ss" not in str(caught.value)


# -- e-mail through a real SMTP server --------------------------------------------------------

@dataclass
class Inbox:
    refuse: set[str] = field(default_factory=set)
    received: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        yield inbox, port


def smtp_settings(port: int) -> ChannelSettings:
    return ChannelSettings(smtp_url=f"smtp://127.0.0.1:{port}?from=centre@firetower.example.org&starttls=0",
                           timeout_s=5.0)


async def test_email_arrives_with_chinese_subject_and_body(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    outcome = await send("email", "Duty.Officer@Example.ORG", None, SUBJECT, BODY, smtp_settings(port))
    assert outcome.ok and outcome.error is None and outcome.duration_ms > 0, outcome
    [envelope] = inbox.received
    assert envelope.rcpt_tos == ["Duty.Officer@example.org"]
    assert envelope.mail_from == "centre@firetower.example.org"
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert "Duty.Officer@example.org" in str(message["To"])
    assert str(message["Subject"]) == SUBJECT
    part = message.get_body(("plain",))
    assert part is not None and isinstance(part, EmailMessage)
    assert part.get_content().strip().replace("\r\n", "\n") == BODY


async def test_email_refused_recipient_is_permanent(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    inbox.refuse.add("gone@example.org")
    outcome = await send("email", "gone@example.org", None, SUBJECT, BODY, smtp_settings(port))
    assert not outcome.ok and outcome.permanent, outcome
    assert outcome.error is not None and "550" in outcome.error
    assert inbox.received == []


async def test_email_server_down_is_retried() -> None:
    outcome = await send("email", "a@example.org", None, SUBJECT, BODY, smtp_settings(free_port()))
    assert not outcome.ok and not outcome.permanent, outcome
    assert outcome.error is not None and "connection" in outcome.error.lower()


# -- robots against real receivers ------------------------------------------------------------

@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def only(receiver: Receiver) -> Any:
    [rec] = receiver.robots.received
    assert rec.problems == []
    return rec


async def test_dingtalk_signed_markdown(receiver: Receiver) -> None:
    outcome = await send("dingtalk", receiver.dingtalk_url(), receiver.robots.dingtalk_secret, SUBJECT, BODY,
                         ChannelSettings())
    assert outcome == Outcome(True, False, None, outcome.duration_ms)
    rec = only(receiver)
    assert rec.body["markdown"]["title"] == SUBJECT
    assert SUBJECT in rec.body["markdown"]["text"] and "幸福路 12 号" in rec.body["markdown"]["text"]
    assert abs(int(rec.query["timestamp"][0]) - time.time() * 1000) < 60_000


async def test_dingtalk_unsigned(receiver: Receiver) -> None:
    receiver.robots.dingtalk_secret = None
    outcome = await send("dingtalk", receiver.dingtalk_url(), None, SUBJECT, BODY, ChannelSettings())
    assert outcome.ok, outcome
    assert "sign" not in only(receiver).query


async def test_dingtalk_sign_not_match_is_permanent(receiver: Receiver) -> None:
    wrong = "SEC" + "f" * 64
    outcome = await send("dingtalk", receiver.dingtalk_url(), wrong, SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent, outcome
    assert outcome.error is not None and "310000" in outcome.error and "sign not match" in outcome.error
    assert wrong not in outcome.error


async def test_rejected_token_is_permanent_and_not_repeated(receiver: Receiver) -> None:
    url = receiver.dingtalk_url().replace(receiver.robots.dingtalk_token, "revoked0123456789abcdef")
    outcome = await send("dingtalk", url, receiver.robots.dingtalk_secret, SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent, outcome
    assert outcome.error is not None and "300001" in outcome.error
    assert "revoked0123456789abcdef" not in outcome.error   # the receiver echoed it; the reason does not


async def test_wecom_markdown(receiver: Receiver) -> None:
    outcome = await send("wecom", receiver.wecom_url(), None, SUBJECT, BODY, ChannelSettings())
    assert outcome.ok, outcome
    content = only(receiver).body["markdown"]["content"]
    assert SUBJECT in content and "请立即确认" in content


async def test_wecom_long_message_is_cut_to_its_limit(receiver: Receiver) -> None:
    outcome = await send("wecom", receiver.wecom_url(), None, SUBJECT, "火" * 3000, ChannelSettings())
    assert outcome.ok, outcome
    assert only(receiver).body["markdown"]["content"].endswith("…")


async def test_wecom_wrong_key_is_permanent(receiver: Receiver) -> None:
    url = receiver.wecom_url().replace(receiver.robots.wecom_key, "00000000-0000-0000-0000-000000000000")
    outcome = await send("wecom", url, None, SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent and outcome.error is not None and "93000" in outcome.error


async def test_feishu_signed_text(receiver: Receiver) -> None:
    outcome = await send("feishu", receiver.feishu_url(), receiver.robots.feishu_secret, SUBJECT, BODY,
                         ChannelSettings())
    assert outcome.ok, outcome
    body = only(receiver).body
    assert body["content"]["text"] == f"{SUBJECT}\n{BODY}"
    assert abs(int(body["timestamp"]) - time.time()) < 60


async def test_feishu_bad_signature_is_permanent(receiver: Receiver) -> None:
    outcome = await send("feishu", receiver.feishu_url(), "not-the-secret", SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent and outcome.error is not None and "19021" in outcome.error


async def test_feishu_unsigned_old_style_answer() -> None:
    with Receiver(Robots(feishu_secret=None)) as receiver:
        outcome = await send("feishu", receiver.feishu_url(), None, SUBJECT, BODY, ChannelSettings())
    assert outcome.ok, outcome
    assert "sign" not in only(receiver).body


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False), (408, False),
                                                   (404, True), (403, True), (302, True)])
async def test_http_status_classification(receiver: Receiver, status: int, permanent: bool) -> None:
    url = receiver.wecom_url(prefix=f"/status/{status}")
    outcome = await send("wecom", url, None, SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent is permanent, outcome
    assert outcome.error is not None and f"HTTP {status}" in outcome.error


@pytest.mark.parametrize(("channel", "url"), [
    ("dingtalk", "http://127.0.0.1:{port}/robot/send?access_token=tok3n-s3cret-value"),
    ("feishu", "http://127.0.0.1:{port}/open-apis/bot/v2/hook/tok3n-s3cret-value"),
    ("apprise", "json://127.0.0.1:{port}/path/tok3n-s3cret-value"),
])
async def test_refused_port_is_retried_and_the_reason_holds_no_token(channel: str, url: str) -> None:
    outcome = await send(channel, url.format(port=free_port()), None, SUBJECT, BODY, ChannelSettings(timeout_s=3.0))
    assert not outcome.ok and not outcome.permanent, outcome
    assert outcome.error is not None and "connection" in outcome.error.lower()
    assert "tok3n-s3cret-value" not in outcome.error


async def test_slow_robot_times_out_and_is_retried(receiver: Receiver) -> None:
    started = time.monotonic()
    outcome = await send("feishu", receiver.feishu_url(prefix="/slow"), None, SUBJECT, BODY,
                         ChannelSettings(timeout_s=0.3))
    assert time.monotonic() - started < SLOW_S
    assert not outcome.ok and not outcome.permanent and outcome.error is not None
    assert "timed out after 0.3 s" in outcome.error


async def test_bad_address_is_permanent_before_any_request(receiver: Receiver) -> None:
    outcome = await send("wecom", f"{receiver.base}/cgi-bin/webhook/send", None, SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent and outcome.error is not None and "key=<token>" in outcome.error
    assert receiver.robots.received == []


# -- SMS gateway and Apprise contacts (Apprise's json:// service to the receiver) -------------

async def test_sms_through_the_gateway_template(receiver: Receiver) -> None:
    settings = ChannelSettings(sms_url=f"json://127.0.0.1:{receiver.port}/json/sms/{{phone}}")
    outcome = await send("sms", "+86 138-1234-5678", None, SUBJECT, BODY, settings)
    assert outcome.ok, outcome
    rec = only(receiver)
    assert unquote(rec.path) == "/json/sms/+8613812345678"
    assert BODY in rec.body["message"] and rec.body["title"] == SUBJECT


@pytest.mark.parametrize("channel", ["sms", "voice", "email"])
async def test_unconfigured_gateway_is_permanent(channel: str) -> None:
    address = "a@example.org" if channel == "email" else "13812345678"
    outcome = await send(channel, address, None, SUBJECT, BODY, ChannelSettings())
    setting = {"sms": "SMS_URL", "voice": "VOICE_URL", "email": "SMTP_URL"}[channel]
    assert outcome == Outcome(False, True, f"{channel} not configured (FIRETOWER_NOTIFY_{setting})",
                              outcome.duration_ms)


async def test_apprise_contact(receiver: Receiver) -> None:
    outcome = await send("apprise", f"json://127.0.0.1:{receiver.port}/json/contact", None, SUBJECT, BODY,
                         ChannelSettings())
    assert outcome.ok, outcome
    assert json.dumps(only(receiver).body, ensure_ascii=False).count("幸福路") == 1


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (429, False), (404, True)])
async def test_apprise_failure_classified_from_its_log(receiver: Receiver, status: int, permanent: bool) -> None:
    url = f"json://127.0.0.1:{receiver.port}/status/{status}/tok3n-s3cret-value"
    outcome = await send("apprise", url, None, SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent is permanent, outcome
    assert outcome.error is not None and f"error={status}" in outcome.error


@pytest.mark.parametrize("url", ["nosuchservice://x/y", "json://[abc/x", "json://"])
async def test_unusable_apprise_url_is_permanent(url: str) -> None:
    outcome = await send("apprise", url, None, SUBJECT, BODY, ChannelSettings())
    assert not outcome.ok and outcome.permanent, outcome
