"""Short codes cannot be guessed by trying: wrong codes are counted per verifier and per client address.

A short code is eight characters (about 40 bits), short enough to read out over the phone, and so
short enough to be worth guessing by a registered verifier with a signing key. Each short code
that names no grant of the sender counts one failure against the sender (its participant id) and
against the client address it came from; past ``GATEWAY_SHORT_CODE_RATE_LIMIT`` failures in either,
every short code is refused with ``AUTHORISATION_THROTTLED`` before it is looked up, right or wrong,
so that a guesser learns nothing more until the window passes. Grant tokens are not counted: their
ES256 signature cannot be guessed.

Counts live where the sign-in limits do (``GATEWAY_RATE_LIMIT_STORAGE``: one process's memory, a
Redis shared by every process and node, or a SQLite file shared by the processes of one machine,
``gateway.store.rate_counts``), through ``limits``, the library under Flask-Limiter.
"""

from __future__ import annotations

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from gateway.errors import ConfigurationError
from gateway.store import rate_counts  # noqa: F401  (registers gateway+sqlite:// with limits)

_NAMESPACE = "short-code-failures"


class ShortCodeThrottle:
    """Counts wrong short codes per verifier and per client address, and says when to stop looking."""

    def __init__(self, limit: str, storage_uri: str) -> None:
        try:
            self._limits: list[RateLimitItem] = parse_many(limit)
        except ValueError as exc:
            raise ConfigurationError(f"GATEWAY_SHORT_CODE_RATE_LIMIT: {exc}") from None
        self._limiter = FixedWindowRateLimiter(storage_from_string(storage_uri))

    def allows(self, verifier_id: str, client: str | None) -> bool:
        """False once the verifier, or the client address, has used up its failures in a window."""
        keys = _keys(verifier_id, client)
        return all(self._limiter.test(limit, _NAMESPACE, *key) for key in keys for limit in self._limits)

    def failed(self, verifier_id: str, client: str | None) -> None:
        """Count one wrong short code against the verifier and the client address."""
        for key in _keys(verifier_id, client):
            for limit in self._limits:
                self._limiter.hit(limit, _NAMESPACE, *key)


def _keys(verifier_id: str, client: str | None) -> list[tuple[str, str]]:
    keys = [("verifier", verifier_id)]
    if client:
        keys.append(("client", client))
    return keys
