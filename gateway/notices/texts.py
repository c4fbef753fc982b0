"""What a notice says, in Chinese or English: the same words in the portal and in the e-mail.

A notice's ``facts`` hold ids and codes; here they become names (of organisations, looked up by the
caller), labels from the code lists and catalogs, and Beijing times. The words are the catalog's
``notice.<kind>.title`` and ``.text`` (``gateway/web/i18n``), a key per kind, so a test keeps both
languages complete. No text carries an identity number, a transfer or a verification number: an
e-mail says what happened and leads to the portal for the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from gateway.codes.lists import code_list
from gateway.web.i18n import beijing_time, catalog, in_language


@dataclass(frozen=True)
class Words:
    key: str  # notice.<kind> (registration_submitted is "registration_corrected" for a correction)
    title: str
    text: str


def display_kind(kind: str, facts: Mapping[str, object]) -> str:
    if kind == "registration_submitted" and facts.get("corrected"):
        return "registration_corrected"
    return kind


def words(kind: str, facts_json: str, language: str, names: Mapping[str, str]) -> Words:
    """The title and text of a notice of ``kind`` with ``facts_json`` in ``language``."""
    facts: dict[str, object] = json.loads(facts_json)
    key = f"notice.{display_kind(kind, facts)}"
    values = _values(facts, language, names)
    return Words(key, in_language(language, f"{key}.title", **values), in_language(language, f"{key}.text", **values))


def _values(facts: Mapping[str, object], language: str, names: Mapping[str, str]) -> dict[str, str]:
    def name(field: str) -> str:
        value = str(facts.get(field) or "")
        return names.get(value, value)

    separator = in_language(language, "graduate.list_separator")
    reasons = facts.get("reasons")
    return {
        "registration_id": str(facts.get("registration_id") or ""),
        "university": name("university"),
        "department": name("department"),
        "holder": name("holder"),
        "receiver": name("receiver"),
        "employer": name("employer"),
        "verifier": name("verifier"),
        "position": str(facts.get("position") or ""),
        "agreement_id": str(facts.get("agreement_id") or ""),
        "valid_until": str(facts.get("valid_until") or ""),
        "due": _time(facts.get("due")),
        "method": dispatch_method(str(facts.get("method") or ""), language),
        "waybill": str(facts.get("waybill") or "—"),
        "documents": str(facts.get("documents") or 0),
        "missing": str(facts.get("missing") or 0),
        "damaged": str(facts.get("damaged") or 0),
        # The department's sentences end with their own full stop; the notice's sentence adds one.
        "reasons": separator.join(str(r).rstrip("。.；; ") for r in reasons) if isinstance(reasons, list) else "",
        "facts": separator.join(fact_label(f, language) for f in str(facts.get("facts") or "").split(",") if f),
        "purpose": purpose_label(str(facts.get("purpose") or ""), language),
        "fault": fault_words(str(facts.get("fault") or ""), language),
    }


def _time(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    return beijing_time(datetime.fromisoformat(value))


def dispatch_method(code: str, language: str) -> str:
    """A dispatch method's name from the code list (``confidential_communication`` is 机要通信)."""
    row = code_list("dispatch-methods").get(code)
    return row[f"name_{language}"] if row else code


def fact_label(fact: str, language: str) -> str:
    key = f"graduate.fact.{fact}"
    return in_language(language, key) if key in catalog(language) else fact


def purpose_label(purpose: str, language: str) -> str:
    key = f"graduate.purpose.{purpose}"
    return in_language(language, key) if key in catalog(language) else purpose


def fault_words(code: str, language: str) -> str:
    """What an authorisation fault means for the graduate (``AUTHORISATION_REVOKED``: you had revoked it)."""
    key = "graduate.fault." + code.removeprefix("AUTHORISATION_").lower()
    return in_language(language, key if key in catalog(language) else "graduate.fault.other")
