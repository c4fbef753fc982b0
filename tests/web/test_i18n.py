"""The Chinese and English catalogs say the same things, and every text a template asks for exists."""

from __future__ import annotations

import re
from pathlib import Path

from flask.testing import FlaskClient

from gateway.web.i18n import LANGUAGES, catalog

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway"
KEY = re.compile(r"""_\(\s*["']([a-z0-9_.]+)["']""")


def test_catalogs_have_the_same_keys() -> None:
    keys = {language: set(catalog(language)) for language in LANGUAGES}
    assert keys["zh"] == keys["en"], keys["zh"] ^ keys["en"]


def test_every_key_used_in_templates_and_code_exists() -> None:
    used: set[str] = set()
    for path in [*TEMPLATES.rglob("*.html"), *TEMPLATES.rglob("*.py")]:
        used |= set(KEY.findall(path.read_text(encoding="utf-8")))
    used |= {key for key in re.findall(r'translate\("([a-z0-9_.]+)"', _all_python())}
    missing = {key for key in used if key not in catalog("en") and "." in key and not key.endswith(".")}
    assert not missing


def _all_python() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in TEMPLATES.rglob("*.py"))


def test_language_from_query_cookie_and_browser(client: FlaskClient) -> None:
    assert "Staff sign-in" in client.get("/staff/sign-in?lang=en").get_data(as_text=True)
    assert "Staff sign-in" in client.get("/staff/sign-in").get_data(as_text=True)  # remembered in the cookie
    fresh = client.application.test_client()
    assert "工作人员登录" in fresh.get("/staff/sign-in").get_data(as_text=True)  # default Chinese
    english = fresh.get("/staff/sign-in", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Staff sign-in" in english.get_data(as_text=True)


def test_the_language_link_keeps_the_other_query_arguments(client: FlaskClient) -> None:
    page = client.get("/staff/sign-in?next=%2Fstaff%2F&lang=zh").get_data(as_text=True)
    assert 'href="?next=%2Fstaff%2F&amp;lang=en"' in page


# --- complete and correct (issue 17, item 4) -------------------------------------------------------

CJK = r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]"
# Half-width punctuation touching Chinese text: "名称:", "(北京)", "完成." are wrong; "名称：" is right.
HALF_WIDTH_IN_CHINESE = re.compile(rf"{CJK}[,:;!?()]|[,:;!?(]{CJK}|{CJK}\.(?![\w.])")
TEMPLATE_CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
MAKES_ENTRY = re.compile(r"AuditEvent|kind|_audit\(|_event\(|record\(")
AUDIT_KIND = re.compile(r'"((?:message|delivery|registry|access|staff|audit|grant|graduate|payload)\.[a-z_]+)"')


def audit_kinds_in_code() -> set[str]:
    """Every audit entry kind the code writes: the kind literals on the lines that make an entry, and the
    computed ones (``grant.{outcome}``)."""
    found = {"grant.used", "grant.refused"}
    for path in TEMPLATES.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for before, line in zip(["", *lines], lines, strict=False):
            if MAKES_ENTRY.search(line) or before.rstrip().endswith("AuditEvent("):
                found |= set(AUDIT_KIND.findall(line))
    return found


def test_every_service_status_kind_notice_and_error_has_words_in_both_languages(app: object) -> None:
    from gateway.intake.catalog import ServiceCatalog
    from gateway.messages.models import DeliveryStatus
    from gateway.notices.models import MailState, MailStatus
    from gateway.notices.record import KINDS
    from gateway.settings import SCHEMAS_DIR
    from gateway.web.errors import KNOWN

    keys = {f"service.{s.name}" for s in ServiceCatalog(SCHEMAS_DIR).services}
    keys |= {f"audit.kind.{kind}" for kind in audit_kinds_in_code()}
    keys |= {f"audit.status.{status.value}" for status in DeliveryStatus}
    keys |= {f"notice.{kind}.{part}" for kind in (*KINDS, "registration_corrected") for part in ("title", "text")}
    keys |= {f"error.{name}.{part}" for name in (*KNOWN.values(), "csrf", "other") for part in ("title", "text")}
    keys |= {f"graduate.notices.mail.{state}" for state in (MailStatus.PENDING, MailStatus.SENT, MailStatus.FAILED)}
    keys |= {f"graduate.notices.mail.{state}" for state in (MailState.NEW, MailState.NO_ADDRESS, MailState.NOT_MAILED)}
    keys |= {f"graduate.registration.status.{s}" for s in ("registered", "filed", "rejected")}
    keys |= {f"graduate.registration.step.{s}" for s in ("submitted", "corrected", "filed", "rejected")}
    for language in LANGUAGES:
        missing = keys - set(catalog(language))
        assert not missing, (language, sorted(missing))
    same = {k for k in keys if catalog("zh")[k] == catalog("en")[k]}
    assert not same, same


def test_the_kinds_found_are_the_ones_written() -> None:
    """The scan finds kinds the code writes (a kind added tomorrow is found the same way)."""
    found = audit_kinds_in_code()
    assert {"message.accepted", "grant.created", "graduate.signed_in", "audit.verified", "payload.purged"} <= found
    assert "graduate.portal" not in found  # a catalog key, not a kind


def test_chinese_text_uses_full_width_punctuation() -> None:
    offending = {key: text for key, text in catalog("zh").items() if HALF_WIDTH_IN_CHINESE.search(text)}
    assert not offending, offending
    for path in [*TEMPLATES.rglob("*.html"), *(TEMPLATES / "web" / "privacy").glob("zh.md")]:
        words = re.sub(r"<[^>]*>", " ", TEMPLATE_CODE.sub(" ", path.read_text(encoding="utf-8")))
        found = [words[max(0, m.start() - 12) : m.end() + 12] for m in HALF_WIDTH_IN_CHINESE.finditer(words)]
        assert not found, (path, found)


def test_the_punctuation_check_can_fail() -> None:
    for wrong in ("名称:", "(北京)", "已完成.", "授权,用途"):
        assert HALF_WIDTH_IN_CHINESE.search(wrong), wrong
    for right in ("名称：", "（北京）", "已完成。", "UTC+8", "name@example.cn", "10.5 天"):
        assert not HALF_WIDTH_IN_CHINESE.search(right), right
