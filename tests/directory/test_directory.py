"""The public directory at ``/directory`` (HTML), ``/directory.json`` and ``/directory.csv``."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from stdnum.cn import uscc

from gateway.registry.models import ParticipantCertificate
from gateway.registry.services import ParticipantInput, add_participant, set_enabled
from gateway.store.db import transaction
from tests.conftest import AGENCY_BEIJING, AGENCY_CHAOYANG, PRIVATE_EMPLOYER, SOE_EMPLOYER

CHAOYANG = "北京市朝阳区人才服务中心"
BEIJING = "北京市人才服务中心"
PUDONG = "上海市浦东新区人才服务中心"
UNIVERSITY = "北京示范大学"
EDUCATION_DEPARTMENT = "北京市教育委员会"
HUKOU_OFFICE = "北京市公安局海淀分局"
EMPLOYERS = ("中国示范能源集团有限公司", "北京示范科技有限公司")
FORMATS = ("/directory", "/directory.json", "/directory.csv")


def credit_code(first17: str) -> str:
    return first17 + uscc.calc_check_digit(first17)


def add(app: Flask, **fields: Any) -> str:
    """Register a participant (a talent service agency in Beijing unless told otherwise); its id."""
    data = {
        "kind": "talent_service_agency",
        "region": "110108",
        "regions_served": ("110108",),
        **fields,
    }
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:
        return add_participant(session, ParticipantInput(**data), context.clock.now()).id


def as_json(client: FlaskClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/directory.json{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    return body


def names(client: FlaskClient, query: str = "") -> list[str]:
    return [o["name"] for o in as_json(client, query)["organisations"]]


def csv_rows(client: FlaskClient, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/directory.csv{query}")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))


def html(client: FlaskClient, query: str = "") -> str:
    response = client.get(f"/directory{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


# --- the three formats -----------------------------------------------------------------------


def test_json_lists_the_service_organisations_agencies_first(client: FlaskClient) -> None:
    body = as_json(client)
    assert body["count"] == len(body["organisations"]) == 6
    assert body["generated_at"].endswith("+00:00")
    listed = [o["name"] for o in body["organisations"]]
    assert set(listed[:3]) == {CHAOYANG, BEIJING, PUDONG}
    assert {EDUCATION_DEPARTMENT, UNIVERSITY, HUKOU_OFFICE} <= set(listed)
    chaoyang = next(o for o in body["organisations"] if o["name"] == CHAOYANG)
    assert chaoyang == {
        "credit_code": AGENCY_CHAOYANG,
        "name": CHAOYANG,
        "kind": {"code": "talent_service_agency", "zh": "人才服务机构", "en": "Talent service agency"},
        "region": {"code": "110105", "name": "北京市朝阳区"},
        "regions_served": [{"code": "110105", "name": "北京市朝阳区"}],
        "contact": {
            "name": "档案服务窗口",
            "phone": "010-65090000",
            "email": None,
            "address": "北京市朝阳区示范路1号",
            "opening_hours": None,
        },
    }


def test_employers_are_not_listed(client: FlaskClient) -> None:
    for path in FORMATS:
        text = client.get(path).data.decode("utf-8")
        for name in EMPLOYERS:
            assert name not in text
        assert SOE_EMPLOYER not in text and PRIVATE_EMPLOYER not in text


def test_a_participant_without_declared_regions_serves_its_own(client: FlaskClient) -> None:
    body = as_json(client, "?kind=education_department")
    assert body["organisations"][0]["regions_served"] == [{"code": "110000", "name": "北京市"}]


def test_csv_is_utf8_with_bom_for_excel(client: FlaskClient) -> None:
    response = client.get("/directory.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == "attachment; filename=directory.csv"
    assert response.data.startswith(b"\xef\xbb\xbfcredit_code,name,kind,")
    rows = csv_rows(client)
    assert len(rows) == 6
    chaoyang = next(r for r in rows if r["name"] == CHAOYANG)
    assert chaoyang["credit_code"] == AGENCY_CHAOYANG
    assert chaoyang["kind_zh"] == "人才服务机构" and chaoyang["kind_en"] == "Talent service agency"
    assert chaoyang["region_code"] == "110105" and chaoyang["region_name"] == "北京市朝阳区"
    assert chaoyang["regions_served_codes"] == "110105"
    assert chaoyang["contact_phone"] == "010-65090000"
    assert chaoyang["contact_address"] == "北京市朝阳区示范路1号"
    university = next(r for r in rows if r["name"] == UNIVERSITY)
    assert university["contact_email"] == "jobs@demo-university.edu.cn"


def test_csv_cells_cannot_become_spreadsheet_formulas(app: Flask, client: FlaskClient) -> None:
    add(app, id=credit_code("12110108400000010"), name="=HYPERLINK(1)人才服务中心")
    names_in_csv = [r["name"] for r in csv_rows(client)]
    assert "'=HYPERLINK(1)人才服务中心" in names_in_csv


def test_html_page_is_bilingual_phone_friendly_and_lists_contacts(client: FlaskClient) -> None:
    response = client.get("/directory")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for name in (CHAOYANG, BEIJING, PUDONG, EDUCATION_DEPARTMENT, UNIVERSITY, HUKOU_OFFICE):
        assert name in page
    assert "010-65090000" in page and "北京市朝阳区示范路1号" in page
    assert "mailto:jobs@demo-university.edu.cn" in page
    assert "人才服务机构" in page and "Talent service agency" in page
    assert page.index("人才服务机构") < page.index("Talent service agency")
    assert '<form method="get" action="/directory"' in page
    assert 'name="region"' in page and 'name="q"' in page


def test_html_links_to_json_and_csv_with_the_same_filters(client: FlaskClient) -> None:
    page = html(client, "?region=110105&q=朝阳")
    assert 'href="/directory.json?region=110105&amp;q=%E6%9C%9D%E9%98%B3"' in page
    assert 'href="/directory.csv?region=110105&amp;q=%E6%9C%9D%E9%98%B3"' in page
    assert 'value="110105"' in page and 'value="朝阳"' in page


# --- filters ---------------------------------------------------------------------------------


def test_region_filter_includes_the_city_and_province_agencies(client: FlaskClient) -> None:
    listed = names(client, "?region=110105")
    assert CHAOYANG in listed and BEIJING in listed
    assert PUDONG not in listed
    # The education department sits in Beijing and so is responsible for Chaoyang; Haidian's are not.
    assert EDUCATION_DEPARTMENT in listed
    assert UNIVERSITY not in listed and HUKOU_OFFICE not in listed
    assert {r["name"] for r in csv_rows(client, "?region=110105")} == set(listed)
    page = html(client, "?region=110105")
    assert CHAOYANG in page and BEIJING in page and PUDONG not in page


def test_region_filter_on_a_province_includes_those_inside_it(client: FlaskClient) -> None:
    assert names(client, "?region=310000") == [PUDONG]
    assert set(names(client, "?region=110000&kind=talent_service_agency")) == {CHAOYANG, BEIJING}


def test_region_filter_includes_an_agency_serving_the_region_from_elsewhere(app: Flask, client: FlaskClient) -> None:
    add(app, id=credit_code("12110108400000011"), name="异地人才服务中心", regions_served=("110105",))
    assert "异地人才服务中心" in names(client, "?region=110105")
    assert "异地人才服务中心" not in names(client, "?region=110101")


def test_name_search(client: FlaskClient) -> None:
    assert names(client, "?q=朝阳") == [CHAOYANG]
    assert set(names(client, "?q=人才服务中心")) == {CHAOYANG, BEIJING, PUDONG}
    assert names(client, "?q=不存在的机构") == []
    assert CHAOYANG in html(client, "?q=朝阳") and PUDONG not in html(client, "?q=朝阳")
    assert [r["name"] for r in csv_rows(client, "?q=浦东")] == [PUDONG]


def test_kind_filter(client: FlaskClient) -> None:
    assert names(client, "?kind=university") == [UNIVERSITY]
    assert names(client, "?kind=household_registration_office") == [HUKOU_OFFICE]
    assert set(names(client, "?kind=talent_service_agency&region=110105")) == {CHAOYANG, BEIJING}


def test_a_disabled_participant_disappears(app: Flask, client: FlaskClient) -> None:
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:
        set_enabled(session, AGENCY_BEIJING, False, context.clock.now())
    assert BEIJING not in names(client)
    assert BEIJING not in html(client)
    assert all(r["name"] != BEIJING for r in csv_rows(client))
    assert names(client, "?region=110105") == [CHAOYANG, EDUCATION_DEPARTMENT]


# --- nothing internal ------------------------------------------------------------------------


def test_nothing_internal_leaks(app: Flask, client: FlaskClient) -> None:
    endpoint = "https://agency-endpoint.internal.example.cn/soap/inbox"
    pushed = add(
        app,
        id=credit_code("12110108400000012"),
        name="海淀区人才服务中心",
        delivery_mode="push",
        endpoint_url=endpoint,
        contact_phone="010-62000000",
    )
    context = app.extensions["gateway"]
    with transaction(context.sessions) as session:
        certificates = list(session.scalars(select(ParticipantCertificate)))
    assert certificates, "the demo participants have certificates"
    secrets = [endpoint, "agency-endpoint", *(c.fingerprint_sha256 for c in certificates)]
    secrets += [c.fingerprint_sha256.upper() for c in certificates]
    secrets += [c.serial_number for c in certificates if len(c.serial_number) >= 12]
    secrets += ["BEGIN CERTIFICATE", "delivery_mode", "endpoint", "enabled"]
    for path in FORMATS:
        response = client.get(path)
        text = response.data.decode("utf-8")
        assert "海淀区人才服务中心" in text, path
        for secret in secrets:
            assert secret not in text, (path, secret)
    organisation = next(o for o in as_json(client)["organisations"] if o["credit_code"] == pushed)
    assert set(organisation) == {"credit_code", "name", "kind", "region", "regions_served", "contact"}


def test_html_escapes_names(app: Flask, client: FlaskClient) -> None:
    add(app, id=credit_code("12110108400000013"), name="<script>alert(1)</script>人才服务中心")
    page = html(client)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;人才服务中心" in page
    assert "<script>alert(1)</script>人才服务中心" in names(client)


# --- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["11010", "abcdef", "1101050", "999999"])
def test_a_bad_region_is_refused_in_every_format(client: FlaskClient, region: str) -> None:
    response = client.get(f"/directory.json?region={region}")
    assert response.status_code == 400
    assert response.json is not None and response.json["field"] == "region"
    assert "region" in response.json["message"]
    response = client.get(f"/directory.csv?region={region}")
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert "region" in response.get_data(as_text=True)
    response = client.get(f"/directory?region={region}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and "region" in page and CHAOYANG not in page


def test_malformed_region_message_says_what_is_wrong(client: FlaskClient) -> None:
    response = client.get("/directory.json?region=11010")
    assert response.json is not None
    assert response.json["message"] == "region: a GB/T 2260 region code is six digits, not '11010'"


@pytest.mark.parametrize("query", ["?kind=employer", "?kind=spaceport", "?q=" + "名" * 101])
def test_other_bad_parameters_are_refused(client: FlaskClient, query: str) -> None:
    for path in FORMATS:
        assert client.get(path + query).status_code == 400, path


def test_empty_parameters_are_no_filter(client: FlaskClient) -> None:
    assert as_json(client, "?region=&q=+&kind=")["count"] == 6
