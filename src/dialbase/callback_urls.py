"""Whether a callback URL may be called: ``http``/``https`` to a public address only.

A bulk import's ``callBackUrl`` is POSTed to by the server once the import is done, so
without a check the endpoint would let any client make the server reach its own internal
network (server-side request forgery). A URL is refused when:

- it is not an absolute ``http`` or ``https`` URL with a host (user info and fragments are
  refused too: nothing the server would send should hide in them);
- its host is an IP address, or a name that resolves to any address, that is private,
  loopback, link-local, unspecified, multicast or reserved (IPv4-mapped IPv6 addresses are
  judged as the IPv4 address they carry), unless ``allow_private`` is on
  (``DIALBASE_ALLOW_PRIVATE_CALLBACKS``, for tests and closed networks);
- its host name does not resolve (it could not be called anyway), allowed or not.

A name is judged by every address it resolves to: one private address among public ones
refuses it. The check is repeated by whoever delivers the callback, just before it does,
because a name may resolve differently later (DNS rebinding).

``check_callback_url`` resolves with ``socket.getaddrinfo`` (blocking: call it in a thread
from async code); ``check_callback_url_async`` resolves with the event loop's resolver,
bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT = 5.0  # seconds the async check waits for the resolver
MAX_URL_CHARS = 2048
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

NOT_HTTP = "the URL is not an absolute http or https URL with a host"
USER_INFO = "the URL carries a user name or password"
FRAGMENT = "the URL has a fragment"
TOO_LONG = f"the URL is longer than {MAX_URL_CHARS} characters"
UNRESOLVED = "the host name does not resolve"
NOT_PUBLIC = "the host is, or resolves to, a non-public address ({})"


def check_callback_url(url: str, allow_private: bool) -> str | None:
    """None when ``url`` may be called; else why not (resolves names: blocking)."""
    parts = _parts(url)
    if isinstance(parts, str):
        return parts
    host = parts.hostname or ""
    literal = _literal(host)
    if literal is not None:
        return _judge([literal], allow_private)
    try:
        infos = socket.getaddrinfo(host, parts.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return UNRESOLVED
    return _judge_resolved((str(info[4][0]) for info in infos), allow_private)


async def check_callback_url_async(
    url: str,
    allow_private: bool,
    *,
    resolve: Callable[[str, int | None], Awaitable[list[str]]] | None = None,
    timeout: float = RESOLVE_TIMEOUT,
) -> str | None:
    """``check_callback_url`` without blocking the event loop: the loop's resolver
    (or ``resolve``, in tests), given at most ``timeout`` seconds (then: unresolved)."""
    parts = _parts(url)
    if isinstance(parts, str):
        return parts
    host = parts.hostname or ""
    literal = _literal(host)
    if literal is not None:
        return _judge([literal], allow_private)
    try:
        async with asyncio.timeout(timeout):
            addresses = await (resolve or _loop_resolve)(host, parts.port)
    except (OSError, UnicodeError, ValueError, TimeoutError):
        return UNRESOLVED
    return _judge_resolved(addresses, allow_private)


async def _loop_resolve(host: str, port: int | None) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _parts(url: str) -> SplitResult | str:
    """The URL's parts, or why it is not a callable URL at all."""
    if not isinstance(url, str) or not url.strip():
        return NOT_HTTP
    text = url.strip()
    if len(text) > MAX_URL_CHARS:
        return TOO_LONG
    if any(ord(char) < 0x21 or char == "\x7f" for char in text):  # spaces, controls, NUL
        return NOT_HTTP
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises on a port that is not a number 0..65535)
    except ValueError:
        return NOT_HTTP
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return NOT_HTTP
    if parts.username is not None or parts.password is not None:
        return USER_INFO
    if parts.fragment or text.endswith("#"):
        return FRAGMENT
    return parts


def _literal(host: str) -> IPAddress | None:
    """The host as an IP address when it is written as one (IPv6 without brackets)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _judge_resolved(addresses: Iterable[str], allow_private: bool) -> str | None:
    found: list[IPAddress] = []
    for text in addresses:
        try:
            found.append(ipaddress.ip_address(text.split("%", 1)[0]))  # drop an IPv6 zone
        except ValueError:
            return UNRESOLVED
    if not found:
        return UNRESOLVED
    return _judge(found, allow_private)


def _judge(addresses: Iterable[IPAddress], allow_private: bool) -> str | None:
    if allow_private:
        return None
    for address in addresses:
        if not is_public(address):
            return NOT_PUBLIC.format(address)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether an address is an ordinary public unicast address: globally reachable
    (``is_global``: not private, loopback, link-local, unspecified, shared, documentation
    or otherwise special-purpose), not multicast, not reserved; an IPv6 address carrying
    an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64) only when that one is public too."""
    if not address.is_global or address.is_multicast or address.is_reserved:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return False
        return all(is_public(inner) for inner in _embedded(address))
    return True


def _embedded(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    inner: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        inner.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)
    if address in NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return inner
