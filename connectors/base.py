"""The interface every outbound connector implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Outbound:
    """What a connector hands over: the envelope to forward and where it goes."""

    message_id: str
    sender_id: str
    recipient_id: str
    endpoint_url: str
    envelope: bytes
    timeout_seconds: float


@dataclass(frozen=True)
class Acknowledgement:
    """The recipient's answer: ``positive`` only when it confirmed it took the message."""

    positive: bool
    detail: str


class Connector(Protocol):
    def deliver(self, outbound: Outbound) -> Acknowledgement:
        """Hand ``outbound`` to the recipient; raise on transport failure (the caller retries)."""
        ...
