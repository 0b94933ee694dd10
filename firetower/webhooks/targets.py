"""Which addresses a webhook may be sent to: the SSRF policy, in one pure function.

A webhook URL is chosen by an integrator, and the centre sends requests to it from inside the
operator's network, so without a policy an integrator could make the dispatcher talk to the
database's port, the cloud metadata service or an internal admin page. Refused, unless an
administrator allow-lists the network (`FIRETOWER_WEBHOOK_ALLOW_NETWORKS`):

- unspecified (0.0.0.0, ::), loopback (127/8, ::1), private (RFC 1918, fc00::/7, and the
  other ranges the `ipaddress` module calls private: 0/8, documentation, benchmarking, ...),
  shared address space (100.64/10), link-local (169.254/16 with the 169.254.169.254 metadata
  service, fe80::/10), site-local (fec0::/10), multicast, reserved (240/4) and broadcast;
- anything else that `ipaddress` does not call global;
- IPv6 addresses that carry an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96,
  6to4 2002::/16) are judged by the IPv4 address they carry.

The check runs at registration (API) and at every delivery **after DNS resolution**, on the
address the connection is then made to (dispatch/transport.py), so a name that resolves to
127.0.0.1, or a name re-bound to one after registration, is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from firetower.settings import IPNetwork
from firetower.webhooks.delivery_log import NOT_ALLOWED

log = logging.getLogger(__name__)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
# Registration waits this long for DNS; a name that does not resolve by then is accepted (it is
# checked again at every delivery).
REGISTRATION_RESOLVE_S = 3.0
# Names that always mean this machine, whatever the resolver says (RFC 6761).
LOCAL_NAMES = ("localhost", "localhost.", "localhost.localdomain")


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why a webhook may not be sent to `address` (a short category: "loopback", "private",
    ...), or None if it may. An address inside an allow-listed network is always allowed."""
    allowed = tuple(allowed)
    if any(address.version == net.version and address in net for net in allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(address.compressed.partition("%")[0])
        inner = _embedded_v4(address)
        if inner is not None:
            return refusal(inner, allowed)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address in _SITE_LOCAL:
        return "site-local"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared address space"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "special-purpose"
    return None


def literal(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (TCP), in the resolver's order; raises OSError
    (socket.gaierror) when it does not resolve."""
    if host.lower() in LOCAL_NAMES or host.lower().endswith((".localhost", ".localhost.")):
        return [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    address = literal(host)
    if address is not None:
        return [address]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        a = ipaddress.ip_address(sockaddr[0])
        if a not in out:
            out.append(a)
    return out


def first_refusal(addresses: Iterable[IPAddress],
                  allowed: Iterable[IPNetwork] = ()) -> tuple[IPAddress, str] | None:
    """The first address refused and why; a name is refused if any address it resolves to is
    (the resolver may hand out another one on the next attempt)."""
    allowed = tuple(allowed)
    for a in addresses:
        why = refusal(a, allowed)
        if why is not None:
            return a, why
    return None


async def url_refusal(url: str, allowed: Iterable[IPNetwork] = (),
                      resolve_s: float = REGISTRATION_RESOLVE_S) -> str | None:
    """At registration: why a webhook may not be sent to `url`, or None. A host that does not
    resolve (yet) is not refused here; deliveries check every connection anyway."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "Invalid IPv6 URL": an unbalanced bracket in the host
        return "give an http:// or https:// URL with a host"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "give an http:// or https:// URL with a host"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "invalid port"
    try:
        async with asyncio.timeout(resolve_s):
            addresses = await resolve(parts.hostname, port)
    except (OSError, TimeoutError, UnicodeError):
        return None
    refused = first_refusal(addresses, allowed)
    if refused is None:
        return None
    log.warning("webhook URL refused at registration: %s resolves to %s (%s)", parts.hostname,
                *refused)
    return (f"{NOT_ALLOWED}: webhooks may not target loopback, private, link-local or other "
            "internal addresses unless an administrator allow-lists them "
            "(FIRETOWER_WEBHOOK_ALLOW_NETWORKS)")
