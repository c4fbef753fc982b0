"""Connection limits per client address and in all, taken before a connection is read.

A client that opens many connections (idle, or sending slowly) must not use up what honest
clients need: each address may hold ``per_client`` connections at once, and the worker process
``total``. The addresses of trusted front proxies (``GATEWAY_TRUSTED_PROXIES``) are exempt from
the per-client limit, since every client behind a proxy arrives from its address; the proxy then
applies the per-client limits itself (docs/operations.md names its settings).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable


class ConnectionLimits:
    """Counts open connections per client address; ``admit`` says whether one more may open.

    Used from one event loop thread only (the worker's), so it needs no lock.
    """

    def __init__(self, per_client: int, total: int, exempt: Iterable[str] = ()) -> None:
        if per_client < 1 or total < 1:
            raise ValueError("connection limits must be at least 1")
        self.per_client = per_client
        self.total = total
        self.exempt = tuple(ipaddress.ip_network(n, strict=False) for n in exempt)
        self._open: Counter[str] = Counter()
        self._count = 0

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; None if admitted, else why it is refused."""
        if self._count >= self.total:
            return f"the gateway holds its limit of {self.total} connections"
        if self._open[address] >= self.per_client and not self._exempt(address):
            return f"your address holds its limit of {self.per_client} open connections"
        self._open[address] += 1
        self._count += 1
        return None

    def release(self, address: str) -> None:
        """Forget one admitted connection from ``address`` (it closed)."""
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]
        self._count -= 1

    def open_from(self, address: str) -> int:
        return self._open[address]

    @property
    def open(self) -> int:
        return self._count

    def _exempt(self, address: str) -> bool:
        if not self.exempt:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.exempt)
