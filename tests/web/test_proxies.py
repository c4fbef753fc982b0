"""The client address: X-Forwarded-For believed only from trusted proxies, read from the right."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import ConfigurationError
from gateway.settings import Settings
from gateway.web.proxies import PEER_KEY, TrustedProxies

PROXIES = ("10.0.0.0/8", "2001:db8::/32", "192.0.2.10")


def client_of(peer: str, forwarded: str | None, networks: tuple[str, ...] = PROXIES) -> tuple[str, str]:
    """(REMOTE_ADDR the application sees, the peer kept aside) for one request."""
    seen: dict[str, Any] = {}

    def application(environ: dict[str, Any], start_response: object) -> list[bytes]:
        seen.update(environ)
        return []

    environ = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    TrustedProxies(application, networks)(environ, lambda *a: None)  # type: ignore[arg-type]
    return seen["REMOTE_ADDR"], seen[PEER_KEY]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # From a trusted proxy: the rightmost address that is not a trusted proxy's.
        ("10.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client's own claim (6.6.6.6) is not believed
        ("10.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"),  # two trusted proxies in a row
        ("10.0.0.1", "203.0.113.9,192.0.2.10", "203.0.113.9"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # trusted all the way: the farthest one
        ("10.0.0.1", "not-an-address, 10.0.0.2", "10.0.0.2"),  # garbage stops the walk at the last believable hop
        ("10.0.0.1", "", "10.0.0.1"),
        ("10.0.0.1", None, "10.0.0.1"),
        ("2001:db8::1", "[2001:db8:ffff::2], 2a00:1450::1", "2a00:1450::1"),
        ("::ffff:10.0.0.1", "203.0.113.9", "203.0.113.9"),  # a dual-stack socket's mapped IPv4 address
        # Not from a trusted proxy: the header is ignored, whatever it says.
        ("203.0.113.50", "10.0.0.7", "203.0.113.50"),
        ("192.0.2.11", "1.2.3.4", "192.0.2.11"),
    ],
)
def test_the_client_is_the_rightmost_address_not_of_a_trusted_proxy(
    peer: str, forwarded: str | None, client: str
) -> None:
    assert client_of(peer, forwarded) == (client, peer)


def test_without_trusted_proxies_the_header_is_never_believed() -> None:
    assert client_of("10.0.0.1", "203.0.113.9", networks=()) == ("10.0.0.1", "10.0.0.1")


def test_the_setting_takes_addresses_and_networks_and_names_a_bad_one() -> None:
    settings = Settings.from_env({"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.10 2001:db8::/32"})
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.10/32", "2001:db8::/32")
    with pytest.raises(ConfigurationError, match=r"GATEWAY_TRUSTED_PROXIES: 'proxy.example' is not"):
        Settings.from_env({"GATEWAY_TRUSTED_PROXIES": "10.0.0.1,proxy.example"})
