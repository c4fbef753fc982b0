"""Every text the portal looks up by a computed key exists in both languages (the i18n test sees only literals)."""

from __future__ import annotations

from gateway.graduates.services import EVENTS
from gateway.grants import scope
from gateway.portal import grant_views, history_views, views
from gateway.registry.models import ParticipantKind
from gateway.web.i18n import LANGUAGES, catalog


def computed_keys() -> set[str]:
    keys = {f"graduate.fact.{fact}" for fact in scope.FACTS} | {f"graduate.fact.{fact}.hint" for fact in scope.FACTS}
    keys |= {f"graduate.purpose.{purpose}" for purpose in scope.PURPOSES}
    keys |= {f"graduate.state.{state.value}" for state in scope.GrantState}
    keys |= {f"graduate.kind.{kind.value}" for kind in ParticipantKind}
    keys |= set(views.ACTIVATION_REFUSALS.values()) | set(grant_views.INVALID_FIELDS.values())
    keys |= set(grant_views.REFUSALS.values()) | set(grant_views.DONE.values())
    keys |= {f"graduate.event.{event}" for event in EVENTS.values()} | set(history_views.FAULT_TEXTS.values())
    keys |= set(history_views.OFFER_REFUSALS.values()) | set(history_views.OFFER_DONE.values())
    keys |= {
        f"graduate.offer.{d}.{part}" for d in history_views.OFFER_DONE for part in ("title", "question", "confirm")
    }
    return keys


def test_computed_keys_exist_in_both_catalogs() -> None:
    for language in LANGUAGES:
        missing = computed_keys() - set(catalog(language))
        assert not missing, (language, missing)


def test_every_authorisation_fault_has_words() -> None:
    from gateway import errors

    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.Fault)}
    assert {code for code in codes if code.startswith("AUTHORISATION_")} == set(history_views.FAULT_TEXTS)


def test_the_texts_differ_by_language() -> None:
    same = {key for key in computed_keys() if catalog("zh")[key] == catalog("en")[key]}
    assert not same
