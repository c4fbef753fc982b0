"""The service's public pages: the landing page ``/``, the privacy notice ``/privacy`` and the agencies'
documents ``/docs/<name>``; and what every page's layout shows (the operator in the footer).

The privacy notice is a document the operator can change: Markdown, ``zh.md`` and ``en.md``, from
``GATEWAY_PRIVACY_NOTICE_DIR`` when set, else the shipped ones (``gateway/web/privacy/``). Its
``{placeholders}`` (the operator, the retention and session settings) are filled from the settings,
so the notice always states the periods the gateway actually applies. Markdown is rendered by
markdown-it-py with raw HTML turned off: a notice cannot put a script or a style into a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from flask import Blueprint, Flask, abort, render_template
from flask.typing import ResponseReturnValue
from markdown_it import MarkdownIt
from markupsafe import Markup

from gateway.grants import scope
from gateway.settings import PROJECT_ROOT, Settings
from gateway.web.context import gateway
from gateway.web.i18n import current_language, in_language

blueprint = Blueprint("site", __name__)
SHIPPED_NOTICE = Path(__file__).resolve().parent / "privacy"
DOCS_DIR = PROJECT_ROOT / "docs"
# The documents for agencies' developers served at /docs/<name> (from the repository's docs/).
PUBLIC_DOCS = ("integration", "signing", "protocol", "faults")
_PLACEHOLDER = re.compile(r"\{([a-z_]{1,40})\}")
_DOC_LINK = re.compile(r"^(?:docs/|\./)?([a-z]{1,20})\.md(#[A-Za-z0-9_-]{0,80})?$")


@dataclass(frozen=True)
class ShownOperator:
    """The operator as the footer shows it, in the page's language (English falls back to Chinese)."""

    name: str
    phone: str
    email: str
    hours: str


def shown_operator(settings: Settings, language: str) -> ShownOperator:
    op = settings.operator
    english = language == "en"
    return ShownOperator(
        name=(op.name_en if english and op.name_en else op.name),
        phone=op.phone,
        email=op.email,
        hours=(op.hours_en if english and op.hours_en else op.hours),
    )


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")


def render_markdown(text: str, link: dict[str, str] | None = None) -> Markup:
    """``text`` as HTML (no raw HTML passes); links to ``NAME.md`` become ``link[NAME]`` when given."""
    md = _markdown()
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open" and link:
                found = _DOC_LINK.match(str(child.attrGet("href") or ""))
                if found and found.group(1) in link:
                    child.attrSet("href", link[found.group(1)] + (found.group(2) or ""))
    html = md.renderer.render(tokens, md.options, {})
    return Markup(html)  # noqa: S704  (markdown-it with html=False escapes everything it does not render)


def notice_values(settings: Settings, language: str) -> dict[str, str]:
    """What the privacy notice's ``{placeholders}`` stand for."""
    op = shown_operator(settings, language)
    unset = in_language(language, "site.operator.unset")
    days = settings.payload_retention_days
    retention = (
        in_language(language, "privacy.retention.days", days=days)
        if days
        else in_language(language, "privacy.retention.kept")
    )
    return {
        "operator": op.name or unset,
        "operator_phone": op.phone or unset,
        "operator_email": op.email or unset,
        "operator_hours": op.hours or unset,
        "payload_retention": retention,
        "session_idle_minutes": str(settings.session_idle_minutes),
        "session_max_hours": str(settings.session_max_hours),
        "grant_max_days": str(scope.MAX_VALID_DAYS),
        "grant_max_uses": str(scope.MAX_USES),
        "archive_dispatch_days": str(settings.archive_dispatch_days),
        "archive_receipt_days": str(settings.archive_receipt_days),
    }


def privacy_notice(settings: Settings, language: str) -> Markup:
    """The privacy notice in ``language``, as HTML, with the settings filled in."""
    folder = settings.privacy_notice_dir or SHIPPED_NOTICE
    path = folder / f"{language}.md"
    if not path.is_file():  # an operator's folder with one language only: the shipped one for the other
        path = SHIPPED_NOTICE / f"{language}.md"
    values = notice_values(settings, language)
    text = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), path.read_text(encoding="utf-8"))
    return render_markdown(text)


@blueprint.get("/")
def landing() -> ResponseReturnValue:
    return render_template("landing.html")


@blueprint.get("/privacy")
def privacy() -> ResponseReturnValue:
    return render_template("privacy.html", notice=privacy_notice(gateway().settings, current_language()))


@blueprint.get("/docs/<name>")
def document(name: str) -> ResponseReturnValue:
    """One of the agencies' documents (``docs/NAME.md``), where the gateway runs from a source tree."""
    if name not in PUBLIC_DOCS:
        abort(404)
    html = _document(name)
    if html is None:
        abort(404)
    return render_template("document.html", html=html, name=name)


@blueprint.get("/docs/", endpoint="integration")
def integration() -> ResponseReturnValue:
    return document("integration")


@cache
def _document(name: str) -> Markup | None:
    path = DOCS_DIR / f"{name}.md"
    if not path.is_file():
        return None
    return render_markdown(path.read_text(encoding="utf-8"), {doc: f"/docs/{doc}" for doc in PUBLIC_DOCS})


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)

    @app.context_processor
    def _layout() -> dict[str, object]:
        return {"site_operator": lambda: shown_operator(gateway().settings, current_language())}
