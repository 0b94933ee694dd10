"""The dispatcher's HTTP transport: the SSRF policy at the socket, and errors worth showing.

`GuardedTransport` is httpx's own transport whose connection pool connects through
`GuardedBackend`: every new connection resolves the URL's host, refuses it if any address it
resolves to is refused by `firetower.webhooks.targets.refusal` (unless allow-listed), and
then connects to exactly the address it checked, so DNS rebinding between the check and the
connection gains nothing. TLS still verifies the certificate against the URL's host name.
Environment proxies are not used (a proxy would connect on our behalf, unchecked).

`describe` turns a failed attempt into the short text integrators see in the delivery log:
what failed ("timeout", "connection refused", "address not allowed", ...), never the
exception's text or anything the target answered.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Iterator

import httpcore
import httpx

from firetower.settings import IPNetwork
from firetower.webhooks import targets
from firetower.webhooks.delivery_log import ERROR_TEXTS

log = logging.getLogger(__name__)


class TargetRefused(httpcore.ConnectError):
    """The host resolves to an address the policy refuses."""


class NameNotResolved(httpcore.ConnectError):
    """The host does not resolve."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self._allowed = tuple(allowed)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await targets.resolve(host, port)
        except OSError as exc:
            raise NameNotResolved(f"{host} does not resolve") from exc
        refused = targets.first_refusal(addresses, self._allowed)
        if refused is not None:
            address, why = refused
            log.warning("webhook target %s:%s refused: it resolves to %s (%s); allow-list it "
                        "in FIRETOWER_WEBHOOK_ALLOW_NETWORKS if intended", host, port,
                        address, why)
            raise TargetRefused(f"{targets.NOT_ALLOWED}: {host} resolves to {address} ({why})")
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # exactly the addresses checked above
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # resolve() returns at least one address
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allowed: Iterable[IPNetwork] = (), *,
                 limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        super().__init__(limits=limits, trust_env=False)
        # httpx's transport takes no network backend, so its pool is replaced by one that has
        # ours (tests/dispatch/test_ssrf.py fails if this ever stops taking effect).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allowed))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
        if isinstance(e, BaseExceptionGroup):
            todo += list(e.exceptions)


def describe(exc: httpx.HTTPError) -> str:
    """What failed, in a few words (one of delivery_log.ERROR_TEXTS), for the delivery log."""
    chain = list(_chain(exc))
    kinds: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (TargetRefused, targets.NOT_ALLOWED), (NameNotResolved, "name not resolved"),
        ((httpx.TimeoutException, httpcore.TimeoutException, TimeoutError), "timeout"),
        (ConnectionRefusedError, "connection refused"), (ssl.SSLError, "TLS error"),
        (httpx.RemoteProtocolError, "invalid HTTP answer"),
        (httpx.ConnectError, "connection failed"),
        ((httpx.ReadError, httpx.WriteError, ConnectionError), "connection lost")]
    for kind, text in kinds:
        if any(isinstance(e, kind) for e in chain):
            assert text in ERROR_TEXTS
            return text
    return "request failed"
