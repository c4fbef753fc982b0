"""The client's address as the trusted front proxies report it.

Behind a load balancer every request comes from the balancer's address; counting sign-in
attempts per address would then count every user as one, and one attacker would lock everyone
out. The proxy reports the address it saw in ``X-Forwarded-For``, appending to whatever the
client sent, so only the part the trusted proxies wrote may be believed: read from the right,
skip the addresses of trusted proxies, and the first address that is not one is the client.

The header is believed only when the request comes from a trusted proxy itself
(``GATEWAY_TRUSTED_PROXIES``: addresses or CIDR networks; none by default, so a client talking to
the gateway directly cannot name itself anything). werkzeug's ``ProxyFix`` trusts a fixed number
of hops whoever sends the request, which lets a client that reaches the gateway directly forge
its address; this middleware decides by the sender's address instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
PEER_KEY = "gateway.proxy_peer"  # the address the request really came from, kept in the WSGI environ


class TrustedProxies:
    """WSGI middleware: ``REMOTE_ADDR`` becomes the rightmost address not of a trusted proxy."""

    def __init__(self, app: WSGIApplication, networks: Iterable[str]) -> None:
        self.app = app
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_KEY] = peer
        if self.networks and self.trusted(_address(peer)):
            environ["REMOTE_ADDR"] = self.client(peer, environ.get("HTTP_X_FORWARDED_FOR", ""))
        return self.app(environ, start_response)

    def client(self, peer: str, forwarded: str) -> str:
        """The client address, given a trusted ``peer`` and its ``X-Forwarded-For`` (several joined by commas)."""
        client = peer
        for hop in reversed(forwarded.split(",")):
            address = _address(hop)
            if address is None:  # not written by a proxy we trust: stop at the last address we could believe
                break
            client = str(address)
            if not self.trusted(address):
                break
        return client

    def trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)


def _address(text: Any) -> Address | None:
    value = str(text).strip().removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket is 10.0.0.1
    return address
