"""The SSRF address policy (firetower/webhooks/targets.py): a table of addresses, properties
over whole ranges, the registration check of URLs, and the dispatcher's error texts."""

from __future__ import annotations

import ipaddress
import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.transport import GuardedTransport, describe
from firetower.settings import Settings, SettingsError, parse_networks
from firetower.webhooks.delivery_log import ERROR_TEXTS, NO_SECRET, public_error
from firetower.webhooks.targets import refusal, url_refusal

ip = ipaddress.ip_address
net = ipaddress.ip_network

TABLE = [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.254", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("169.254.169.254", "link-local"), ("169.254.0.1", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"), ("100.64.0.1", "shared address space"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("fec0::1", "site-local"),
    ("192.0.2.10", "private"), ("198.18.0.1", "private"), ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"), ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"), ("2002:a00:1::", "private"), ("::7f00:1", "reserved"),
    ("8.8.8.8", None), ("1.1.1.1", None), ("93.184.216.34", None), ("2606:4700::1111", None),
    ("::ffff:8.8.8.8", None), ("2002:808:808::", None), ("64:ff9b::808:808", None),
]


@pytest.mark.parametrize(("address", "why"), TABLE, ids=[a for a, _ in TABLE])
def test_policy_table(address: str, why: str | None) -> None:
    assert refusal(ip(address)) == why


@pytest.mark.parametrize(("address", "allowed", "expected"), [
    ("127.0.0.1", "127.0.0.1/32", None), ("127.0.0.2", "127.0.0.1/32", "loopback"),
    ("10.20.3.4", "10.20.0.0/16", None), ("10.21.0.1", "10.20.0.0/16", "private"),
    ("::ffff:127.0.0.1", "127.0.0.0/8", None), ("::1", "127.0.0.0/8", "loopback"),
    ("169.254.169.254", "10.0.0.0/8,127.0.0.1", "link-local"),
    ("fd00::5", "fd00::/64", None),
])
def test_allow_list(address: str, allowed: str, expected: str | None) -> None:
    assert refusal(ip(address), parse_networks(allowed)) == expected


def test_allow_list_setting_is_validated() -> None:
    s = Settings(env="development", webhook_allow_networks="10.20.0.0/16, 127.0.0.1")
    assert s.webhook_allowed_networks == (net("10.20.0.0/16"), net("127.0.0.1/32"))
    with pytest.raises(SettingsError, match="FIRETOWER_WEBHOOK_ALLOW_NETWORKS"):
        Settings(env="development", webhook_allow_networks="10.20.0.0/33")


INTERNAL_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
               "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]
INTERNAL_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "fec0::/10"]


@st.composite
def inside(draw: st.DrawFn, networks: list[str]) -> tuple[ipaddress.IPv4Address |
                                                           ipaddress.IPv6Address, str]:
    n = net(draw(st.sampled_from(networks)))
    offset = draw(st.integers(0, n.num_addresses - 1))
    return n[offset], str(n)


@given(inside(INTERNAL_V4 + INTERNAL_V6))
def test_every_internal_address_refused_unless_its_network_is_allowed(
        case: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str]) -> None:
    address, network = case
    assert refusal(address) is not None
    assert refusal(address, parse_networks(network)) is None


@given(st.integers(0, 2**32 - 1))
def test_ipv6_forms_of_an_ipv4_address_judged_like_it(n: int) -> None:
    v4 = ipaddress.IPv4Address(n)
    for v6 in (ipaddress.IPv6Address(f"::ffff:{v4}"), ipaddress.IPv6Address((0x2002 << 112) | (n << 80)),
               ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | n)):
        assert (refusal(v6) is None) == (refusal(v4) is None), (v4, v6)


@given(st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                 st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)))
def test_an_allowed_address_is_global_unicast(address: ipaddress.IPv4Address |
                                              ipaddress.IPv6Address) -> None:
    if refusal(address) is not None:
        return
    effective = address
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in net("64:ff9b::/96"):
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        effective = inner or address
    assert effective.is_global and not effective.is_multicast, address


@pytest.mark.parametrize(("url", "refused"), [
    ("http://localhost:8080/x", True), ("http://LOCALHOST./", True), ("http://a.localhost/", True),
    ("http://127.0.0.1/", True), ("https://[::1]:8443/", True), ("http://127.1/", True),
    ("http://2130706433/", True), ("http://0x7f000001/", True), ("http://169.254.169.254/", True),
    ("ftp://example.com/", True), ("http:///nohost", True),
    ("http://\x1d]x/", True), ("http://[::1/", True),  # unbalanced brackets: no URL at all
    ("https://gateway.invalid/hook", False),  # does not resolve: checked at delivery instead
    ("https://8.8.8.8/hook", False),
])
async def test_url_refusal_at_registration(url: str, refused: bool) -> None:
    assert (await url_refusal(url) is not None) == refused


async def test_transport_refuses_and_describes() -> None:
    """Refused before any connection; the texts name what failed, not the exception."""
    async with httpx.AsyncClient(transport=GuardedTransport(), timeout=2) as c:
        for url in ("http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/",
                    "http://169.254.169.254/", "http://[::ffff:7f00:1]:9/"):
            with pytest.raises(httpx.ConnectError) as err:
                await c.post(url, content=b"{}")
            assert describe(err.value) == "address not allowed"
        with pytest.raises(httpx.ConnectError) as err:
            await c.post("http://nothing.invalid/", content=b"{}")
        assert describe(err.value) == "name not resolved"
    from firetower.broker import free_port
    closed = free_port()
    async with httpx.AsyncClient(transport=GuardedTransport(parse_networks("127.0.0.0/8")),
                                 timeout=2) as c:
        with pytest.raises(httpx.ConnectError) as err:
            await c.post(f"http://127.0.0.1:{closed}/", content=b"{}")
        assert describe(err.value) == "connection refused"
    assert describe(httpx.ReadTimeout("read timed out after 5 s")) == "timeout"
    assert describe(httpx.RemoteProtocolError("illegal header: secret")) == "invalid HTTP answer"


@pytest.mark.parametrize(("stored", "shown"), [
    ("HTTP 500: <html>db01.internal admin, password=...</html>", "HTTP 500"),
    ("HTTP 404: not retried", "HTTP 404: not retried"), ("HTTP 503", "HTTP 503"),
    ("ConnectError: [Errno 111] Connect call failed ('10.0.0.5', 5432)", "request failed"),
    ("timeout: ReadTimeout", "timeout"), ("connection refused", "connection refused"),
    (NO_SECRET, NO_SECRET), (None, None),
])
def test_public_error_cuts_rows_written_before_the_fixed_texts(stored: str | None,
                                                                shown: str | None) -> None:
    assert public_error(stored) == shown


@given(st.text(max_size=300))
def test_public_error_never_passes_free_text(text: str) -> None:
    shown = public_error(text)
    assert shown in ERROR_TEXTS or shown == NO_SECRET or (
        shown is not None and re.fullmatch(r"HTTP \d{3}(: not retried)?", shown))
