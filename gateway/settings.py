"""The one settings object.

Settings come from the environment (``GATEWAY_*``) with defaults that make the embedded default
work from a fresh clone: SQLite under ``./data``, key material under ``./keys``, an in-process
delivery broker. Nothing reads the environment anywhere else.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from gateway.codes.credit_code import validate_credit_code
from gateway.errors import ConfigurationError, ValidationError
from gateway.xmlparse import LIBXML_MAX_DEPTH, MAX_ELEMENTS_SETTING, MAX_TEXT_SETTING, XmlLimits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
EMBEDDED_BROKER = "stub://"
# Request threads per worker process. Each holds one request already read whole; the more messages in
# flight, the larger the group commit's batches and the less each pays of a batch's fixed cost: 16
# carried 13 - 16 % more than 8 on one worker (bench/intake/README.md, sixteenth pass).
DEFAULT_THREADS = 16


@dataclass(frozen=True)
class Operator:
    """Who runs the service, as the pages' footer and the privacy notice name it (empty: not configured)."""

    name: str = ""
    name_en: str = ""
    phone: str = ""
    email: str = ""
    hours: str = ""
    hours_en: str = ""


@dataclass(frozen=True)
class MailSettings:
    """SMTP for the graduates' e-mail notices (``gateway.notices.mail``)."""

    smtp_host: str = ""  # empty: e-mail is off (notices are still in the portal)
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_security: str = "none"  # none | starttls | tls
    smtp_timeout_seconds: int = 20
    sender: str = "noreply@localhost"  # the From address
    max_attempts: int = 12  # then the e-mail is marked failed (the notice stays in the portal)
    retry_base_seconds: int = 60  # the first retry's wait; each further one doubles, at most an hour

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host)


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured, validated once at start-up."""

    data_dir: Path
    keys_dir: Path
    database_url: str
    broker_url: str = EMBEDDED_BROKER
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 8
    # Each worker process on one CPU of its own: auto, on or off (gateway.serving.affinity).
    cpu_affinity: str = "auto"
    # Serving limits (gateway.serving): read deadlines for a request's head and body, open
    # connections per client address and per worker process, idle seconds of a kept-alive connection.
    request_head_timeout_seconds: int = 10
    request_body_timeout_seconds: int = 30
    max_connections_per_client: int = 32
    max_connections: int = 4096
    keepalive_seconds: int = 5
    # The group commit (gateway.intake.writer): most messages whose database work shares one transaction.
    intake_batch_limit: int = 64
    # PostgreSQL: the batches' audit entries wait in audit_pending for the sequencer (gateway.audit.log).
    intake_deferred_indexes: bool = False
    max_message_bytes: int = 10 * 1024 * 1024
    max_xml_depth: int = 100
    max_xml_elements: int = 10_000
    max_xml_text_chars: int = 65_536
    key_passphrase: bytes | None = field(default=None, repr=False)
    schemas_dir: Path = SCHEMAS_DIR
    # Empty means the development CA under keys_dir (and its CRL).
    trust_anchor_files: tuple[Path, ...] = ()
    crl_files: tuple[Path, ...] = ()
    timestamp_max_age_seconds: int = 300
    clock_skew_seconds: int = 60
    delivery_grace_seconds: int = 60
    delivery_lease_seconds: int = 120
    retry_base_seconds: int = 5
    # The archive transfer clock (issue 4): days to dispatch after a request, days to receipt after
    # dispatch, and the extension of both for graduates who leave school late.
    archive_dispatch_days: int = 15
    archive_receipt_days: int = 30
    late_leaver_extra_days: int = 30
    # Web sign-in (portal and auditor UI): a session ends after this much inactivity, and in any case
    # after the maximum; cookies are marked Secure when served over HTTPS (behind a TLS proxy).
    session_idle_minutes: int = 30
    session_max_hours: int = 8
    secure_cookies: bool = False
    # Rate limits on sign-in and activation (Flask-Limiter syntax) on failed attempts, counted in
    # ``rate_limit_storage`` (in memory for one process, ``redis://...`` shared by all, or
    # ``gateway+sqlite:///path`` shared by one machine's processes, gateway.store.rate_counts): per account
    # from one client address, per account from anywhere, and per client address over all accounts.
    sign_in_rate_limit: str = "10 per minute;100 per day"
    sign_in_account_rate_limit: str = "30 per hour;200 per day"
    sign_in_address_rate_limit: str = "60 per minute;1000 per day"
    rate_limit_storage: str = "memory://"
    # Short codes that name no grant of the sender, per verifier and per client address.
    short_code_rate_limit: str = "20 per hour;100 per day"
    # The front proxies whose X-Forwarded-For is believed (addresses or networks); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # Where participants reach the gateway (the WSDL's addresses, the banner); None: http://host:port.
    public_url: str | None = None
    # /readyz fails when an audit entry waits longer than this to be integrated (0: never).
    ready_audit_lag_seconds: int = 300
    # The participant id (a credit code) under which the gateway itself sends messages on a graduate's
    # behalf (their answer to an agreement offer): the platform operator's. Registered by `gateway init`.
    platform_id: str = "12100000MB0000009G"
    # Payloads at rest (gateway.messages.payloads): the key ring folder (empty means
    # keys_dir/secrets/payload-keys) and the days after which delivered payloads are purged (0: never).
    payload_key_ring: Path | None = None
    payload_retention_days: int = 0
    # The audit log's entries at /log/entries: off by default (docs/audit.md says why); checkpoints
    # and proofs, which hold only hashes, are always public.
    audit_entries_public: bool = False
    # Signed checkpoints published outside the database, one file each (gateway.audit.publish);
    # empty means data_dir/checkpoints.
    checkpoint_folder: Path | None = None
    # The operator of the service, shown in the footer of every page and in the privacy notice
    # (issue 17): its name (Chinese, and English), help line, contact e-mail and service hours.
    operator: Operator = field(default_factory=Operator)
    # The privacy notice: a folder with zh.md and en.md replacing the shipped ones (empty: the shipped ones).
    privacy_notice_dir: Path | None = None
    # E-mail notices (gateway.notices): none are sent while smtp_host is empty.
    mail: MailSettings = field(default_factory=MailSettings)
    # /metrics (gateway.monitoring): a bearer token the scraper sends, and/or a port of its own
    # (on metrics_host, default host); with neither, /metrics answers 404.
    metrics_token: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    metrics_host: str | None = None

    @property
    def anchors(self) -> tuple[Path, ...]:
        """The PEM bundles of trusted CAs: configured ones, or the development CA."""
        return self.trust_anchor_files or (self.keys_dir / "ca" / "ca.cert.pem",)

    @property
    def crls(self) -> tuple[Path, ...]:
        return self.crl_files or (self.keys_dir / "ca" / "crl.pem",)

    @property
    def payload_keys_dir(self) -> Path:
        """The payload key ring: the configured folder, or ``keys/secrets/payload-keys``."""
        return self.payload_key_ring or self.keys_dir / "secrets" / "payload-keys"

    @property
    def xml_limits(self) -> XmlLimits:
        """What the intake's parser accepts (the bounds that are not settings keep their defaults)."""
        return XmlLimits(depth=self.max_xml_depth, elements=self.max_xml_elements, text_chars=self.max_xml_text_chars)

    @property
    def checkpoint_dir(self) -> Path:
        """Where the sequencer publishes checkpoints: the configured folder, or ``data/checkpoints``."""
        return self.checkpoint_folder or self.data_dir / "checkpoints"

    @property
    def seen_checkpoints_dir(self) -> Path:
        """Where the auditor UI keeps the last checkpoint each auditor saw (out of the database's reach)."""
        return self.data_dir / "seen-checkpoints"

    @property
    def published_url(self) -> str:
        """The gateway's address as participants use it, without a trailing slash.

        ``GATEWAY_PUBLIC_URL`` when set (production: the front proxy's HTTPS address); otherwise
        ``http://HOST:PORT`` from where ``gateway serve`` listens (the embedded default).
        """
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def is_embedded(self) -> bool:
        """True on the embedded default: SQLite and the in-process broker."""
        return self.database_url.startswith("sqlite") and self.broker_url == EMBEDDED_BROKER

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, base_dir: Path | None = None) -> Settings:
        """Read the settings from ``env`` (default: the process environment).

        Raises :class:`ConfigurationError` naming the variable when a value is malformed.
        """
        env = os.environ if env is None else env
        base = base_dir or Path.cwd()
        data_dir = Path(env.get("GATEWAY_DATA_DIR", base / "data")).resolve()
        keys_dir = Path(env.get("GATEWAY_KEYS_DIR", base / "keys")).resolve()
        database_url = env.get("GATEWAY_DATABASE_URL") or f"sqlite:///{data_dir / 'gateway.db'}"
        passphrase = env.get("GATEWAY_KEY_PASSPHRASE")
        key_ring = env.get("GATEWAY_PAYLOAD_KEYS_DIR")
        checkpoints = env.get("GATEWAY_CHECKPOINT_DIR")
        notice_dir = env.get("GATEWAY_PRIVACY_NOTICE_DIR", "").strip()
        metrics_port = _int(env, "GATEWAY_METRICS_PORT", 0, 0, 65535) or None
        if metrics_port is not None and metrics_port == _int(env, "GATEWAY_PORT", 8080, 1, 65535):
            raise ConfigurationError("GATEWAY_METRICS_PORT must differ from GATEWAY_PORT (it serves /metrics only)")
        return cls(
            data_dir=data_dir,
            keys_dir=keys_dir,
            database_url=database_url,
            broker_url=env.get("GATEWAY_BROKER_URL") or EMBEDDED_BROKER,
            host=env.get("GATEWAY_HOST", "127.0.0.1"),
            port=_int(env, "GATEWAY_PORT", 8080, 1, 65535),
            workers=_int(env, "GATEWAY_WORKERS", 1, 1, 64),
            threads=_int(env, "GATEWAY_THREADS", DEFAULT_THREADS, 1, 256),
            cpu_affinity=_choice(env, "GATEWAY_CPU_AFFINITY", "auto", ("auto", "on", "off")),
            request_head_timeout_seconds=_int(env, "GATEWAY_REQUEST_HEAD_TIMEOUT", 10, 1, 300),
            request_body_timeout_seconds=_int(env, "GATEWAY_REQUEST_BODY_TIMEOUT", 30, 1, 3600),
            max_connections_per_client=_int(env, "GATEWAY_MAX_CONNECTIONS_PER_CLIENT", 32, 1, 100_000),
            max_connections=_int(env, "GATEWAY_MAX_CONNECTIONS", 4096, 1, 1_000_000),
            keepalive_seconds=_int(env, "GATEWAY_KEEPALIVE", 5, 0, 300),
            intake_batch_limit=_int(env, "GATEWAY_INTAKE_BATCH_LIMIT", 64, 1, 1024),
            intake_deferred_indexes=_bool(env, "GATEWAY_INTAKE_DEFERRED_INDEXES", False),
            max_message_bytes=_int(env, "GATEWAY_MAX_MESSAGE_BYTES", 10 * 1024 * 1024, 1024, 1 << 30),
            max_xml_depth=_int(env, "GATEWAY_MAX_XML_DEPTH", 100, 8, LIBXML_MAX_DEPTH),
            max_xml_elements=_int(env, "GATEWAY_MAX_XML_ELEMENTS", 10_000, 100, MAX_ELEMENTS_SETTING),
            max_xml_text_chars=_int(env, "GATEWAY_MAX_XML_TEXT", 65_536, 1024, MAX_TEXT_SETTING),
            key_passphrase=passphrase.encode() if passphrase else None,
            trust_anchor_files=_paths(env, "GATEWAY_TRUST_ANCHORS"),
            crl_files=_paths(env, "GATEWAY_CRLS"),
            timestamp_max_age_seconds=_int(env, "GATEWAY_TIMESTAMP_MAX_AGE", 300, 10, 86400),
            clock_skew_seconds=_int(env, "GATEWAY_CLOCK_SKEW", 60, 0, 3600),
            delivery_grace_seconds=_int(env, "GATEWAY_DELIVERY_GRACE_SECONDS", 60, 1, 3600),
            delivery_lease_seconds=_int(env, "GATEWAY_DELIVERY_LEASE_SECONDS", 120, 5, 3600),
            retry_base_seconds=_int(env, "GATEWAY_RETRY_BASE_SECONDS", 5, 1, 3600),
            archive_dispatch_days=_int(env, "GATEWAY_ARCHIVE_DISPATCH_DAYS", 15, 1, 365),
            archive_receipt_days=_int(env, "GATEWAY_ARCHIVE_RECEIPT_DAYS", 30, 1, 365),
            late_leaver_extra_days=_int(env, "GATEWAY_LATE_LEAVER_EXTRA_DAYS", 30, 0, 365),
            session_idle_minutes=_int(env, "GATEWAY_SESSION_IDLE_MINUTES", 30, 1, 24 * 60),
            session_max_hours=_int(env, "GATEWAY_SESSION_MAX_HOURS", 8, 1, 7 * 24),
            secure_cookies=_bool(env, "GATEWAY_SECURE_COOKIES", False),
            sign_in_rate_limit=env.get("GATEWAY_SIGN_IN_RATE_LIMIT") or "10 per minute;100 per day",
            sign_in_account_rate_limit=env.get("GATEWAY_SIGN_IN_ACCOUNT_RATE_LIMIT") or "30 per hour;200 per day",
            sign_in_address_rate_limit=env.get("GATEWAY_SIGN_IN_ADDRESS_RATE_LIMIT") or "60 per minute;1000 per day",
            rate_limit_storage=env.get("GATEWAY_RATE_LIMIT_STORAGE") or "memory://",
            short_code_rate_limit=env.get("GATEWAY_SHORT_CODE_RATE_LIMIT") or "20 per hour;100 per day",
            trusted_proxies=_networks(env, "GATEWAY_TRUSTED_PROXIES"),
            public_url=_public_url(env, "GATEWAY_PUBLIC_URL"),
            ready_audit_lag_seconds=_int(env, "GATEWAY_READY_AUDIT_LAG_SECONDS", 300, 0, 86400),
            platform_id=_credit_code(env, "GATEWAY_PLATFORM_ID", "12100000MB0000009G"),
            payload_key_ring=Path(key_ring).resolve() if key_ring else None,
            payload_retention_days=_int(env, "GATEWAY_PAYLOAD_RETENTION_DAYS", 0, 0, 36500),
            audit_entries_public=_bool(env, "GATEWAY_AUDIT_ENTRIES_PUBLIC", False),
            checkpoint_folder=Path(checkpoints).resolve() if checkpoints else None,
            operator=Operator(
                name=env.get("GATEWAY_OPERATOR_NAME", "").strip(),
                name_en=env.get("GATEWAY_OPERATOR_NAME_EN", "").strip(),
                phone=env.get("GATEWAY_OPERATOR_PHONE", "").strip(),
                email=env.get("GATEWAY_OPERATOR_EMAIL", "").strip(),
                hours=env.get("GATEWAY_OPERATOR_HOURS", "").strip(),
                hours_en=env.get("GATEWAY_OPERATOR_HOURS_EN", "").strip(),
            ),
            privacy_notice_dir=Path(notice_dir).resolve() if notice_dir else None,
            mail=MailSettings(
                smtp_host=env.get("GATEWAY_SMTP_HOST", "").strip(),
                smtp_port=_int(env, "GATEWAY_SMTP_PORT", 25, 1, 65535),
                smtp_username=env.get("GATEWAY_SMTP_USERNAME", ""),
                smtp_password=env.get("GATEWAY_SMTP_PASSWORD", ""),
                smtp_security=_choice(env, "GATEWAY_SMTP_SECURITY", "none", ("none", "starttls", "tls")),
                smtp_timeout_seconds=_int(env, "GATEWAY_SMTP_TIMEOUT", 20, 1, 300),
                sender=env.get("GATEWAY_MAIL_FROM", "").strip() or "noreply@localhost",
                max_attempts=_int(env, "GATEWAY_MAIL_MAX_ATTEMPTS", 12, 1, 100),
                retry_base_seconds=_int(env, "GATEWAY_MAIL_RETRY_SECONDS", 60, 1, 3600),
            ),
            metrics_token=env.get("GATEWAY_METRICS_TOKEN", "").strip() or None,
            metrics_port=metrics_port,
            metrics_host=env.get("GATEWAY_METRICS_HOST", "").strip() or None,
        )


def _paths(env: Mapping[str, str], name: str) -> tuple[Path, ...]:
    raw = env.get(name, "")
    return tuple(Path(part).resolve() for part in raw.split(os.pathsep) if part)


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Addresses or networks (CIDR), separated by commas or spaces, each checked and normalised."""
    found = []
    for part in env.get(name, "").replace(",", " ").split():
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigurationError(f"{name}: {part!r} is not an IP address or network (CIDR)") from None
    return tuple(found)


def _public_url(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{name} must be an http:// or https:// URL with a host, like https://gateway.example.cn"
        )
    return raw.rstrip("/")


def _credit_code(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    try:
        return validate_credit_code(raw, name)
    except ValidationError as exc:
        raise ConfigurationError(f"{name}: {exc.rule}") from None


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, not {value}")
    return value
