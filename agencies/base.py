"""What every agency system does with the gateway: send signed documents, receive and act on them.

An :class:`Agency` is one participant's system. It uses only the public SDK (``gateway.sdk``):

- **sending**: :meth:`Agency.send` signs a document with the agency's own key and certificate
  (``GatewayClient``, zeep + WS-Security) and checks the gateway's signed receipt; a refusal is a
  :class:`~gateway.sdk.client.GatewayRefusal` with the fault code, which the agency records;
- **receiving**: a *push* agency serves ``schemas/recipient-1.wsdl`` (:meth:`Agency.push_app`, the
  SDK's ``recipient_app``: the gateway's signature on each ``gw:Delivery`` is verified there); a
  *pull* agency polls its mailbox (``FetchMessages``) and acknowledges what it took
  (``AcknowledgeMessages``). Either way the document goes into the agency's inbox, de-duplicated by
  sender and message id, and is acknowledged once it is there;
- **acting**: worker threads hand each inbox item to the handler registered for its service.

The inbox lives in memory: a real system would store a message before acknowledging it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from flask import Flask
from lxml import etree

from agencies.documents import business_document
from agencies.records import Organisation
from gateway.sdk.client import GatewayClient, GatewayRefusal, SentMessage
from gateway.sdk.recipient import VerifiedDelivery, recipient_app

log = logging.getLogger(__name__)
PUSH = "push"
PULL = "pull"
SEND_ATTEMPTS = 3


@dataclass(frozen=True)
class Received:
    """A document the gateway delivered to this agency."""

    sender: str
    message_id: str
    service: str
    document: etree._Element


@dataclass(frozen=True)
class Refusal:
    service: str
    code: str


Handler = Callable[[Received], None]


class Agency:
    """One participant's system. Subclasses register handlers in ``self.handlers``."""

    def __init__(self, profile: Organisation, delivery: str, workers: int = 1) -> None:
        if delivery not in (PUSH, PULL):
            raise ValueError(f"delivery is push or pull, not {delivery!r}")
        self.profile = profile
        self.delivery = delivery
        self.handlers: dict[str, Handler] = {}
        self.refusals: list[Refusal] = []
        self.failures: list[str] = []  # handler errors: a bug in the agency, reported by the demo
        self.sent: Counter[str] = Counter()
        self._workers = workers
        self._client: GatewayClient | None = None
        self._connection: tuple[str, Path] | None = None
        self._inbox: queue.Queue[Received | None] = queue.Queue()
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()

    @property
    def id(self) -> str:
        return self.profile.credit_code

    # --- the gateway connection ------------------------------------------------------------------

    def connect(self, gateway_url: str, keys_dir: Path) -> None:
        """Load this participant's key and certificate from ``keys_dir`` and the WSDL from the gateway."""
        self._connection = (gateway_url, keys_dir)
        client = GatewayClient.from_keys(gateway_url, self.id, keys_dir)
        _ = client.zeep  # load the WSDL now, not in the first of several threads at once
        self._client = client

    def reload_credentials(self) -> None:
        """Use the key and certificate now in ``keys_dir`` (after the operator issued new ones)."""
        if self._connection is None:
            raise RuntimeError(f"{self.id} is not connected")
        self.connect(*self._connection)

    @property
    def client(self) -> GatewayClient:
        if self._client is None:
            raise RuntimeError(f"{self.id} is not connected: call connect() first")
        return self._client

    def send(self, document: bytes, recipient: str, service: str, correlation_id: str | None = None) -> SentMessage:
        """Sign and send ``document`` to ``recipient``; the verified receipt, or :class:`GatewayRefusal`.

        A connection lost on the way (a keep-alive connection the server closed just then) is met
        as ``docs/integration.md`` says: the message is signed anew and sent again under the same
        message id, so that it can never be accepted twice (a copy that did arrive makes the
        resend ``DUPLICATE_MESSAGE``).
        """
        message_id = str(uuid.uuid4())
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                sent = self.client.send(
                    document, recipient=recipient, message_id=message_id, correlation_id=correlation_id
                )
                break
            except requests.ConnectionError:
                if attempt == SEND_ATTEMPTS:
                    raise
                log.info("%s: connection lost sending %s %s; sending it again", self.id, service, message_id)
                time.sleep(0.2 * attempt)
            except GatewayRefusal as refusal:
                with self._lock:
                    self.refusals.append(Refusal(service, refusal.code))
                log.info("%s: %s to %s refused: %s", self.id, service, recipient, refusal.code)
                raise
        with self._lock:
            self.sent[service] += 1
        log.info("%s: %s %s accepted for %s", self.id, service, sent.message_id, recipient)
        return sent

    # --- receiving ---------------------------------------------------------------------------------

    def take(self, delivery: VerifiedDelivery) -> bool:
        """Put a verified delivery into the inbox (once per sender and message id); True: acknowledge it."""
        key = (delivery.sender, delivery.message_id)
        with self._lock:
            if key in self._seen:
                return True
            self._seen.add(key)
        document = business_document(delivery.original)
        self._inbox.put(Received(delivery.sender, delivery.message_id, delivery.service, document))
        return True

    def push_app(self, anchor_files: tuple[Path, ...]) -> Flask:
        """The recipient endpoint (``schemas/recipient-1.wsdl``) for push delivery."""
        return recipient_app(self.take, anchor_files)

    def poll_once(self, batch: int = 50) -> int:
        """Fetch up to ``batch`` messages from the mailbox, take them in and acknowledge them."""
        fetched = self.client.fetch(batch)
        for delivery in fetched:
            self.take(delivery)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            if not fetched:
                break
            try:
                self.client.acknowledge(fetched)  # idempotent: acknowledging twice is harmless
                break
            except requests.ConnectionError:
                if attempt == SEND_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)
        return len(fetched)

    # --- running -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the inbox workers, and the mailbox poller of a pull agency."""
        for number in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"{self.id}-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.delivery == PULL:
            self.start_polling()

    def start_polling(self, idle_seconds: float = 0.25, max_idle_seconds: float = 1.0) -> None:
        if self.delivery != PULL or (self._poller is not None and self._poller.is_alive()):
            return
        self._stop_polling.clear()
        self._poller = threading.Thread(
            target=self._poll, args=(idle_seconds, max_idle_seconds), name=f"{self.id}-poller", daemon=True
        )
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop_polling.set()
        if self._poller is not None:
            self._poller.join(timeout=35)
            self._poller = None

    def stop(self) -> None:
        self.stop_polling()
        for _ in self._threads:
            self._inbox.put(None)
        for thread in self._threads:
            thread.join(timeout=35)
        self._threads.clear()

    def busy(self) -> bool:
        """True while documents wait in the inbox or are being acted on."""
        return self._inbox.unfinished_tasks > 0

    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            try:
                if item is None:
                    return
                handler = self.handlers.get(item.service)
                if handler is None:
                    log.warning("%s: no handler for %s %s", self.id, item.service, item.message_id)
                    continue
                handler(item)
            except Exception as exc:
                assert item is not None
                log.exception("%s: handling %s %s failed", self.id, item.service, item.message_id)
                with self._lock:
                    self.failures.append(f"{item.service} {item.message_id}: {type(exc).__name__}: {exc}")
            finally:
                self._inbox.task_done()

    def _poll(self, idle_seconds: float, max_idle_seconds: float) -> None:
        wait = idle_seconds
        while not self._stop_polling.is_set():
            try:
                taken = self.poll_once()
            except Exception:  # the gateway restarting, a network hiccup: try again later
                log.warning("%s: polling the mailbox failed", self.id, exc_info=True)
                taken = 0
                wait = max_idle_seconds
            if taken:
                wait = idle_seconds
                continue
            self._stop_polling.wait(wait)
            wait = min(wait * 2, max_idle_seconds)
