"""``GET /directory`` (HTML), ``/directory.json`` and ``/directory.csv``: the public directory.

The brief (section 1) requires a public directory of service organisations with contact
information. It lists the *enabled* participants the public deals with, talent service agencies
first, then education departments, universities and household registration offices. Employers are
left out: they are not service organisations (nobody goes to them for a service under the
graduate employment rules), and the registry holds their HR contacts for the exchange, not for
publication.

Only public facts leave, through the allow-list :class:`Organisation`: the credit code, name,
kind, seat, the regions served and the registered contact details and opening hours, which each
organisation keeps current itself (``DirectoryEntryUpdate``) and which are read on every request,
so that a change shows at once. Certificates, endpoint URLs,
delivery mode and the enabled flag never reach a response, because no entry is ever built from
the registry row directly.

A participant that declares no regions served is listed as serving the region it sits in, which
is how routing resolves it (:mod:`gateway.registry.directory`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.codes.regions import ancestry, lookup_region, region_level, validate_region_code
from gateway.errors import ValidationError
from gateway.registry.models import Participant, ParticipantKind
from gateway.store.db import transaction
from gateway.web.context import gateway
from gateway.web.i18n import beijing_time

blueprint = Blueprint(
    "directory", __name__, template_folder=str(Path(__file__).resolve().parent.parent / "web" / "templates")
)

MAX_QUERY_LENGTH = 100
CSV_HEADER = (
    "credit_code",
    "name",
    "kind",
    "kind_zh",
    "kind_en",
    "region_code",
    "region_name",
    "regions_served_codes",
    "regions_served_names",
    "contact_name",
    "contact_phone",
    "contact_email",
    "contact_address",
    "opening_hours",
)
# Security headers for the HTML page: it loads only the site's stylesheet and runs no script.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
# City-level entries of GB/T 2260 that are placeholders, not names ("市辖区" = "the city's districts").
_PLACEHOLDERS = frozenset({"市辖区", "县", "省直辖县级行政单位", "省直辖行政单位", "自治区直辖县级行政单位"})
# Spreadsheets run a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class KindLabel:
    zh: str
    en: str


# The kinds the directory lists, in listing order; employers are deliberately absent.
PUBLIC_KINDS: dict[str, KindLabel] = {
    ParticipantKind.TALENT_SERVICE_AGENCY: KindLabel("人才服务机构", "Talent service agency"),
    ParticipantKind.EDUCATION_DEPARTMENT: KindLabel("教育行政部门", "Education department"),
    ParticipantKind.UNIVERSITY: KindLabel("高等学校", "University"),
    ParticipantKind.HOUSEHOLD_REGISTRATION_OFFICE: KindLabel("户口登记机关", "Household registration office"),
}
_KIND_ORDER = {kind: rank for rank, kind in enumerate(PUBLIC_KINDS)}


@dataclass(frozen=True)
class Place:
    """A GB/T 2260 region with its full Chinese name (``北京市朝阳区``)."""

    code: str
    name: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name}


def place(code: str) -> Place:
    """``code`` with its full name: the names of its province, city and itself, placeholders left out."""
    names: list[str] = []
    for level_code in reversed(ancestry(code)):
        region = lookup_region(level_code)
        if region is None:
            continue
        if level_code != code and region.name in _PLACEHOLDERS:
            continue
        names.append(region.name)
    return Place(code, "".join(names) or code)


@dataclass(frozen=True)
class Organisation:
    """One entry of the public directory: everything in it may be published."""

    credit_code: str
    name: str
    kind: str
    region: Place
    regions_served: tuple[Place, ...]
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    contact_address: str | None
    opening_hours: str | None = None

    @property
    def kind_label(self) -> KindLabel:
        return PUBLIC_KINDS[self.kind]

    def as_json(self) -> dict[str, Any]:
        return {
            "credit_code": self.credit_code,
            "name": self.name,
            "kind": {"code": self.kind, "zh": self.kind_label.zh, "en": self.kind_label.en},
            "region": self.region.as_json(),
            "regions_served": [p.as_json() for p in self.regions_served],
            "contact": {
                "name": self.contact_name,
                "phone": self.contact_phone,
                "email": self.contact_email,
                "address": self.contact_address,
                "opening_hours": self.opening_hours,
            },
        }

    def as_csv_row(self) -> list[str]:
        return [
            _csv_safe(value or "")
            for value in (
                self.credit_code,
                self.name,
                self.kind,
                self.kind_label.zh,
                self.kind_label.en,
                self.region.code,
                self.region.name,
                ";".join(p.code for p in self.regions_served),
                ";".join(p.name for p in self.regions_served),
                self.contact_name,
                self.contact_phone,
                self.contact_email,
                self.contact_address,
                self.opening_hours,
            )
        ]


def organisation(participant: Participant) -> Organisation:
    """The public entry for ``participant`` (whose kind must be one of :data:`PUBLIC_KINDS`)."""
    served = [r.region for r in participant.regions_served] or [participant.region]
    return Organisation(
        credit_code=participant.id,
        name=participant.name,
        kind=participant.kind,
        region=place(participant.region),
        regions_served=tuple(place(code) for code in sorted(served)),
        contact_name=participant.contact_name,
        contact_phone=participant.contact_phone,
        contact_email=participant.contact_email,
        contact_address=participant.contact_address,
        opening_hours=participant.opening_hours,
    )


def within(code: str, area: str) -> bool:
    """Whether region ``code`` lies inside (or is) region ``area``."""
    level = region_level(area)
    if level == "province":
        return code[:2] == area[:2]
    if level == "city":
        return code[:4] == area[:4]
    return code == area


@dataclass(frozen=True)
class Filters:
    """The query parameters of a directory request, validated."""

    region: str | None = None
    q: str | None = None
    kind: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Filters:
        """Filters from query parameters (empty ones ignored); raises :class:`ValidationError`."""
        region = (args.get("region") or "").strip() or None
        if region is not None:
            region = validate_region_code(region, "region")
        q = (args.get("q") or "").strip() or None
        if q is not None and len(q) > MAX_QUERY_LENGTH:
            raise ValidationError("q", f"a name search has at most {MAX_QUERY_LENGTH} characters")
        kind = (args.get("kind") or "").strip() or None
        if kind is not None and kind not in PUBLIC_KINDS:
            if kind == ParticipantKind.EMPLOYER:
                raise ValidationError("kind", "employers are not service organisations and are not listed")
            raise ValidationError("kind", f"must be one of {', '.join(PUBLIC_KINDS)}")
        return cls(region=region, q=q, kind=kind)

    def query_args(self) -> dict[str, str]:
        """The filters as query parameters, for links that keep them."""
        found = {"region": self.region, "q": self.q, "kind": self.kind}
        return {key: value for key, value in found.items() if value is not None}

    def admits(self, entry: Organisation) -> bool:
        if self.kind is not None and entry.kind != self.kind:
            return False
        if self.q is not None and self.q.casefold() not in entry.name.casefold():
            return False
        if self.region is not None:
            # Responsible for the region: serves it, an area above it (county -> city -> province)
            # or an area inside it; or sits inside it.
            above = ancestry(self.region)
            served = (p.code for p in entry.regions_served)
            if not within(entry.region.code, self.region) and not any(
                code in above or within(code, self.region) for code in served
            ):
                return False
        return True


def load_directory(session: Session) -> list[Organisation]:
    """Every enabled participant of a public kind, in listing order (kind, then region, then name)."""
    query = (
        select(Participant)
        .options(selectinload(Participant.regions_served))
        .where(Participant.enabled.is_(True), Participant.kind.in_(list(PUBLIC_KINDS)))
    )
    entries = [organisation(p) for p in session.scalars(query)]
    return sorted(entries, key=lambda e: (_KIND_ORDER[e.kind], e.region.code, e.name, e.credit_code))


def _csv_safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _read() -> tuple[list[Organisation], datetime]:
    context = gateway()
    with transaction(context.sessions) as session:
        entries = load_directory(session)
    return entries, context.clock.now()


# --- views ------------------------------------------------------------------------------------


@blueprint.get("/directory")
def page() -> Response:
    form = {name: request.args.get(name, "") for name in ("region", "q", "kind")}
    entries, now = _read()
    known_regions = sorted({p for e in entries for p in (e.region, *e.regions_served)}, key=lambda p: p.code)
    error: str | None = None
    try:
        filters = Filters.from_args(request.args)
    except ValidationError as exc:
        error, filters = str(exc), Filters()
    shown = [] if error else [e for e in entries if filters.admits(e)]
    html = render_template(
        "directory.html",
        form=form,
        filters=filters,
        error=error,
        organisations=shown,
        kinds=PUBLIC_KINDS,
        known_regions=known_regions,
        generated_at=beijing_time(now),
    )
    return Response(html, status=400 if error else 200, mimetype="text/html", headers=PAGE_HEADERS)


@blueprint.get("/directory.json")
def as_json() -> Response:
    try:
        filters = Filters.from_args(request.args)
    except ValidationError as exc:
        return _json({"error": "invalid parameter", "field": exc.field, "message": str(exc)}, 400)
    entries, now = _read()
    shown = [e.as_json() for e in entries if filters.admits(e)]
    return _json({"generated_at": now.isoformat(), "count": len(shown), "organisations": shown}, 200)


@blueprint.get("/directory.csv")
def as_csv() -> Response:
    try:
        filters = Filters.from_args(request.args)
    except ValidationError as exc:
        return Response(f"invalid parameter {exc}\n", status=400, mimetype="text/plain")
    entries, _ = _read()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows(e.as_csv_row() for e in entries if filters.admits(e))
    # The byte order mark is how Excel (as set up in China) knows the file is UTF-8, not GBK.
    return Response(
        ("\ufeff" + out.getvalue()).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=directory.csv"},
    )


def _json(body: dict[str, Any], status: int) -> Response:
    # Chinese names stay readable in the raw document instead of becoming \u escapes.
    text = json.dumps(body, ensure_ascii=False, indent=2)
    return Response(text, status=status, mimetype="application/json")
