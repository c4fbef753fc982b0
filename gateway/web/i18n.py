"""Chinese and English for the pages people read (the portal and the auditor UI).

The texts are data: ``gateway/web/i18n/zh.json`` and ``en.json``, one flat object of message keys
each. Templates call ``_("key", name=value)`` (``str.format`` placeholders). The language is the
``?lang=`` of the request (remembered in a cookie), else the cookie, else the browser's
Accept-Language, else Chinese.

Hand-written rather than Flask-Babel because two flat catalogs need no extraction and compilation
step (gettext ``.mo`` files would have to be built at install time); a test keeps the catalogs'
keys identical and checks that every key a template uses exists.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from importlib import resources

from flask import Flask, Response, g, request

from gateway.clock import BEIJING, utc

LANGUAGES = ("zh", "en")
DEFAULT = "zh"
COOKIE = "lang"


@cache
def catalog(language: str) -> dict[str, str]:
    """The messages of ``language`` (one of :data:`LANGUAGES`)."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for language {language!r}")
    text = (resources.files("gateway.web") / "i18n" / f"{language}.json").read_text(encoding="utf-8")
    messages: dict[str, str] = json.loads(text)
    return messages


def current_language() -> str:
    chosen = getattr(g, "language", None)
    if isinstance(chosen, str):
        return chosen
    asked = request.args.get("lang") or request.cookies.get(COOKIE)
    if asked not in LANGUAGES:
        asked = request.accept_languages.best_match(LANGUAGES) or DEFAULT
    g.language = asked
    return asked


def translate(key: str, **values: object) -> str:
    """The message ``key`` in the request's language; a missing key raises ``KeyError`` (tests catch it)."""
    return in_language(current_language(), key, **values)


def in_language(language: str, key: str, **values: object) -> str:
    """The message ``key`` in ``language`` (outside a request too: e-mails are written by a worker)."""
    text = catalog(language)[key]
    return text.format(**values) if values else text


def label(prefix: str, value: str) -> str:
    """The words for a code (``label("service.", "ArchiveReceipt")``), or the code itself when it has none."""
    key = f"{prefix}{value}"
    return translate(key) if key in catalog(current_language()) else value


def other_language() -> str:
    """The language the page is not in (the header names the service in it too)."""
    return next(language for language in LANGUAGES if language != current_language())


TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def beijing_time(moment: datetime | str | None) -> str:
    """``moment`` as every page shows a time: Beijing time, ``2026-06-01 16:05:09`` (the footer says the zone).

    An ISO 8601 text (a time inside a signed document) is shown the same way; one that is not a time as it is.
    """
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            return moment
        return beijing_time(parsed)
    return utc(moment).astimezone(BEIJING).strftime(TIME_FORMAT)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(
        _=translate,
        current_language=current_language,
        other_language=other_language,
        in_language=in_language,
        label=label,
        languages=LANGUAGES,
    )
    # The language link keeps the page's other query arguments (a page number, a grant filter).
    # One time format on every page; the portal's and the auditor UI's older names are the same filter.
    for name in ("beijing", "china_time", "local"):
        app.jinja_env.filters[name] = beijing_time
    app.jinja_env.filters["combine_lang"] = lambda args, language: {**args, "lang": language}
    app.after_request(_remember)


def _remember(response: Response) -> Response:
    asked = request.args.get("lang")
    if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
        response.set_cookie(COOKIE, asked, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response
