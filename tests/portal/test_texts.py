"""Every text the portal looks up by a computed key exists in both languages (the i18n test sees only literals)."""

from __future__ import annotations

from gateway.grants import scope
from gateway.portal import grant_views, views
from gateway.registry.models import ParticipantKind
from gateway.web.i18n import LANGUAGES, catalog


def computed_keys() -> set[str]:
    keys = {f"graduate.fact.{fact}" for fact in scope.FACTS} | {f"graduate.fact.{fact}.hint" for fact in scope.FACTS}
    keys |= {f"graduate.purpose.{purpose}" for purpose in scope.PURPOSES}
    keys |= {f"graduate.state.{state.value}" for state in scope.GrantState}
    keys |= {f"graduate.kind.{kind.value}" for kind in ParticipantKind}
    keys |= set(views.ACTIVATION_REFUSALS.values()) | set(grant_views.INVALID_FIELDS.values())
    keys |= set(grant_views.REFUSALS.values()) | set(grant_views.DONE.values())
    return keys


def test_computed_keys_exist_in_both_catalogs() -> None:
    for language in LANGUAGES:
        missing = computed_keys() - set(catalog(language))
        assert not missing, (language, missing)


def test_the_texts_differ_by_language() -> None:
    same = {key for key in computed_keys() if catalog("zh")[key] == catalog("en")[key]}
    assert not same
