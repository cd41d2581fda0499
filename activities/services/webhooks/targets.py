"""Where a webhook may be POSTed: the SSRF guard, and a connection to the address checked.

A URL is checked when an endpoint is created or changed, and again before every try,
since what a name resolves to can change. The try then connects to the very address
that was checked (``Target.addresses``, the next one if one refuses the connection; the name is still sent as ``Host`` and, over
HTTPS, as SNI and checked against the certificate), so a name that resolves to a public
address for the check and to a private one for the connection (DNS rebinding) cannot
reach the private one.

Refused, unless ``CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS`` is on: loopback, private
(RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10), unspecified, multicast,
reserved and any other non-global address, also inside an IPv4-mapped IPv6 address. A
name is refused if any of its addresses is.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ... import conf
from ...errors import WebhookTargetRefused

SCHEMES = ("http", "https")

# (property of the address, how a refusal names it), the most telling first.
_REFUSED_KINDS = (
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_unspecified", "the unspecified address"),
    ("is_multicast", "a multicast address"),
    ("is_private", "a private-network address"),
    ("is_reserved", "a reserved address"),
)


@dataclass(frozen=True)
class Target:
    """A checked URL: its parts, and the address to connect to."""

    scheme: str
    host: str  # the name as written (lower-cased, IPv6 without brackets)
    port: int
    host_header: str  # host[:port] as the URL writes it
    path: str  # path and query, at least "/"
    addresses: tuple[str, ...]  # the IP addresses checked, to connect to in this order

    @property
    def address(self) -> str:
        return self.addresses[0]


def _refusal_of(address: str) -> str | None:
    """Why ``address`` is not a public one, or ``None`` when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attribute, kind in _REFUSED_KINDS:
        if getattr(ip, attribute):
            return kind
    if not ip.is_global:
        return "a non-public address"
    return None


def _parts(url: str) -> tuple[str, str, int, str, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookTargetRefused(f"the webhook URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise WebhookTargetRefused(
            f"the webhook URL must start with http:// or https:// (not {scheme or 'nothing'}://)"
        )
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetRefused(
            "the webhook URL must not hold a user name or password (the signature "
            "authenticates each notification)"
        )
    host = parts.hostname or ""
    if not host:
        raise WebhookTargetRefused("the webhook URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port, parts.netloc, path


def _addresses_of(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookTargetRefused(f"the webhook host {host} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise WebhookTargetRefused(f"the webhook host {host} resolves to no address")
    return addresses


def _check(host: str, addresses: list[str]) -> None:
    for address in addresses:
        kind = _refusal_of(address)
        if kind is not None:
            named = address if address == host else f"{host} resolves to {address}"
            raise WebhookTargetRefused(
                f"the webhook URL points at {kind} ({named}): only public addresses "
                "are allowed (CRM_WEBHOOKS_ALLOW_PRIVATE_NETWORKS allows others)"
            )


def webhook_url_check(url: str) -> str:
    """Refuse a URL the server will not call (``WebhookTargetRefused``, a 400 naming
    the cause); returns it as given. With private networks allowed the name is not
    resolved now (the try resolves it)."""
    _scheme, host, port, _netloc, _path = _parts(url)
    if not conf.webhooks_allow_private_networks():
        _check(host, _addresses_of(host, port))
    return url


def webhook_target_resolve(url: str) -> Target:
    """Resolve and check ``url`` now, for a try: the address to connect to."""
    scheme, host, port, netloc, path = _parts(url)
    addresses = _addresses_of(host, port)
    if not conf.webhooks_allow_private_networks():
        _check(host, addresses)
    host_header = netloc.rpartition("@")[2]
    return Target(
        scheme=scheme,
        host=host,
        port=port,
        host_header=host_header,
        path=path,
        addresses=tuple(addresses),
    )
