"""Graduates at the portal: through its pages over HTTP, as a browser does, or through the same services in-process.

**The pages** (:class:`PortalPages`): a ``requests`` session per graduate against the served
gateway, as a browser would: it opens each form for its CSRF token and cookie, posts it, and
reads the result off the page (the grant's token from its ``#token`` field, the short code from
``#short-code``). The graduates of the season's stories who answer an offer or revoke a grant take
this path.

**The services** (:class:`PortalServices`): the gateway's own functions that those pages call
(``gateway.graduates.services.activate``, ``gateway.grants.services.create_grant`` and ``revoke``),
run in the demo's process against the same database, with the home's keys: the same checks, the
same rows, the same ``graduate.activated`` and ``grant.*`` audit entries; only the page, its
session and the ``graduate.signed_in`` entry are skipped. Every other graduate with an account
takes this path, because a season's worth of graduates through the pages is not what the pages
allow: every simulated graduate comes from the demo's one loopback address, and activation and
sign-in are rate limited per client address (``GATEWAY_SIGN_IN_RATE_LIMIT``, 10 a minute and 100 a
day by default). The demo keeps that limit as it is rather than loosen it for a show, and keeps
its pages for a few graduates, so that whoever runs it can still sign in afterwards.

An offer is answered only through the pages: the served gateway hands the answer it sends on to
its in-process broker at once; from another process it would wait for the delivery sweep.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Protocol

import requests
from sqlalchemy.orm import Session, sessionmaker

from agencies.records import Authorisation, Graduate
from gateway.clock import Clock
from gateway.graduates.models import GraduateAccount
from gateway.graduates.services import activate
from gateway.grants.services import create_grant, revoke
from gateway.grants.tokens import GrantTokens
from gateway.privacy import IdentityHasher, redact
from gateway.settings import Settings
from gateway.store.db import transaction

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_TOKEN = re.compile(r'<textarea[^>]*id="token"[^>]*>([^<]+)</textarea>')
_SHORT_CODE = re.compile(r'id="short-code">([^<]+)<')
_GRANT_PATH = re.compile(r"/graduate/grants/([0-9a-f-]{36})$")
_ERROR = re.compile(r'<p class="(?:flash )?error"[^>]*>(.*?)</p>', re.S)
_OFFER = re.compile(r'data-offer="(\d+)"(.*?)</li>', re.S)


class PortalError(Exception):
    """The portal refused what the graduate did; the message is the page's (identity numbers masked)."""


@dataclass(frozen=True)
class Handed:
    """A new grant, with what the graduate hands the verifier."""

    grant_id: str
    token: str
    short_code: str  # ABCD-EFGH


class Account(Protocol):
    """A graduate's portal account, as the season uses it."""

    def grant(self, authorisation: Authorisation) -> Handed: ...

    def revoke(self, grant_id: str) -> None: ...


class PortalSite:
    """The portal's pages on the served gateway, where each graduate opens a browser session of their own."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url

    def activate(self, graduate: Graduate, verification_number: str, password: str) -> PortalPages:
        return PortalPages(self._base_url).activate(graduate, verification_number, password)


class PortalPages:
    """One graduate in the portal's pages, signed in by activating (the session's cookie keeps them so)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self._base = base_url.rstrip("/")
        self._http = requests.Session()
        self._timeout = timeout

    def activate(self, graduate: Graduate, verification_number: str, password: str) -> PortalPages:
        """Fill in the activation form; signed in afterwards. Raises :class:`PortalError` on a refusal."""
        self._post(
            "/graduate/activate",
            {
                "identity_number": graduate.identity_number,
                "name": graduate.name,
                "verification_number": verification_number,
                "password": password,
                "password_confirm": password,
                "consent": "yes",
            },
            expect="/graduate/",
        )
        return self

    def grant(self, authorisation: Authorisation) -> Handed:
        """Create the grant on the new-grant form and read the token and short code off its page."""
        location = self._post(
            "/graduate/grants/new",
            {
                "verifier": authorisation.verifier.credit_code,
                "facts": list(authorisation.facts),
                "purpose": authorisation.purpose,
                "purpose_text": authorisation.purpose_text,
                "valid_days": str(authorisation.valid_days),
                "max_uses": str(authorisation.max_uses),
            },
            expect="/graduate/grants/",
        )
        found = _GRANT_PATH.search(location)
        if found is None:
            raise PortalError(f"the new grant's page is not where it should be: {location}")
        page = self._get(location)
        token, short_code = _TOKEN.search(page), _SHORT_CODE.search(page)
        if token is None or short_code is None:
            raise PortalError("the grant's page shows no token or short code")
        return Handed(found.group(1), html.unescape(token.group(1)).strip(), html.unescape(short_code.group(1)).strip())

    def revoke(self, grant_id: str) -> None:
        """Revoke on the grant's confirmation page."""
        self._post(f"/graduate/grants/{grant_id}/revoke", {}, expect=f"/graduate/grants/{grant_id}", follow=True)

    def answer_offer(self, agreement_id: str, accept: bool) -> None:
        """Accept or decline the offer of ``agreement_id`` listed on the offers page, after its confirmation page."""
        page = self._get("/graduate/offers")
        number = next((pk for pk, card in _OFFER.findall(page) if f">{agreement_id}<" in card), None)
        if number is None:
            raise PortalError(f"offer {agreement_id} is not among the graduate's offers")
        decision = "accept" if accept else "decline"
        self._post(f"/graduate/offers/{number}/{decision}", {}, expect="/graduate/offers", follow=True)

    def _get(self, path: str) -> str:
        response = self._http.get(self._base + path, timeout=self._timeout)
        if response.status_code != 200:
            raise PortalError(f"GET {path}: HTTP {response.status_code}")
        return response.text

    def _post(self, path: str, form: dict[str, str | list[str]], expect: str, follow: bool = False) -> str:
        """POST ``form`` with the CSRF token of the page at ``path``; the redirect's location, which must
        start with ``expect`` (a refusal renders the form again, with its message)."""
        page = self._get(path)
        token = _CSRF.search(page)
        if token is None:
            raise PortalError(f"no form with a CSRF token at {path}")
        response = self._http.post(
            self._base + path, data={**form, "csrf_token": token.group(1)}, timeout=self._timeout, allow_redirects=False
        )
        location = response.headers.get("Location", "").removeprefix(self._base)
        if response.status_code not in (302, 303) or not location.split("?")[0].startswith(expect):
            raise PortalError(f"POST {path}: HTTP {response.status_code}: {_page_error(response.text)}")
        if follow:  # the answer is a message on the page redirected to
            landing = self._get(location)
            refused = _ERROR.search(landing)
            if refused is not None:
                raise PortalError(f"POST {path}: {_clean(refused.group(1))}")
        return location


class PortalServices:
    """The portal's services in the demo's process, on the demo home's database and keys."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock
        self._hasher = IdentityHasher.from_file(settings.keys_dir / "secrets" / "identity-hash.key")
        self._tokens = GrantTokens.from_keys_dir(settings.keys_dir, settings.key_passphrase)

    def activate(self, graduate: Graduate, verification_number: str, password: str) -> ServiceAccount:
        """``gateway.graduates.services.activate``; raises its :class:`~gateway.errors.ActivationRefused`."""
        with transaction(self._sessions) as session:
            account = activate(
                session,
                self._hasher,
                graduate.identity_number,
                graduate.name,
                verification_number,
                password,
                self._clock.now(),
            )
            return ServiceAccount(self, account.id)

    def grant(self, account_id: int, authorisation: Authorisation) -> Handed:
        with transaction(self._sessions) as session:
            issued = create_grant(
                session,
                self._tokens,
                self._account(session, account_id),
                authorisation.verifier.credit_code,
                authorisation.facts,
                authorisation.purpose,
                authorisation.purpose_text,
                self._clock.now(),
                valid_days=authorisation.valid_days,
                max_uses=authorisation.max_uses,
            )
            return Handed(issued.grant.id, issued.token, issued.short_code)

    def revoke(self, account_id: int, grant_id: str) -> None:
        with transaction(self._sessions) as session:
            revoke(session, self._account(session, account_id), grant_id, self._clock.now())

    @staticmethod
    def _account(session: Session, account_id: int) -> GraduateAccount:
        account = session.get(GraduateAccount, account_id)
        if account is None:
            raise PortalError(f"graduate account {account_id} does not exist")
        return account


@dataclass(frozen=True)
class ServiceAccount:
    """A graduate's account used through :class:`PortalServices`."""

    services: PortalServices
    account_id: int

    def grant(self, authorisation: Authorisation) -> Handed:
        return self.services.grant(self.account_id, authorisation)

    def revoke(self, grant_id: str) -> None:
        self.services.revoke(self.account_id, grant_id)


def _page_error(page: str) -> str:
    found = _ERROR.search(page)
    return _clean(found.group(1)) if found else "no message on the page"


def _clean(text: str) -> str:
    return redact(html.unescape(re.sub(r"<[^>]+>", "", text)).strip())
