"""The WSDL names the gateway's configured address (GATEWAY_PUBLIC_URL), whatever Host a client sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask import Flask
from lxml import etree

from gateway.errors import ConfigurationError
from gateway.settings import Settings
from gateway.web.app import create_app


def addresses(app: Flask, host: str | None = None) -> list[str]:
    headers = {"Host": host} if host else {}
    response = app.test_client().get("/soap?wsdl", headers=headers)
    assert response.status_code == 200
    wsdl = etree.fromstring(response.data)
    found: list[str] = wsdl.xpath("//*[local-name()='import']/@schemaLocation | //*[local-name()='address']/@location")
    return found


@pytest.fixture
def public_app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings.with_overrides(public_url="https://gateway.example.cn/exchange"))
    yield app
    app.extensions["gateway"].engine.dispose()


def test_a_forged_host_header_does_not_reach_the_wsdl(public_app: Flask) -> None:
    honest = addresses(public_app)
    assert "https://gateway.example.cn/exchange/soap" in honest
    assert "https://gateway.example.cn/exchange/schemas/gateway-1.xsd" in honest
    assert all(a.startswith("https://gateway.example.cn/exchange/") for a in honest)
    assert addresses(public_app, host="evil.example") == honest


def test_without_a_public_url_the_address_is_where_the_gateway_listens(settings: Settings) -> None:
    app = create_app(settings.with_overrides(host="127.0.0.1", port=9123))
    try:
        found = addresses(app, host="evil.example")
        assert "http://127.0.0.1:9123/soap" in found and not any("evil" in a for a in found)
    finally:
        app.extensions["gateway"].engine.dispose()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://gateway.example.cn/", "https://gateway.example.cn"),
        ("http://10.1.2.3:8443/exchange", "http://10.1.2.3:8443/exchange"),
    ],
)
def test_the_public_url_setting_is_normalised(value: str, expected: str) -> None:
    assert Settings.from_env({"GATEWAY_PUBLIC_URL": value}).published_url == expected


@pytest.mark.parametrize(
    "value", ["gateway.example.cn", "ftp://gateway.example.cn", "https://", "https://a.cn/?x=1", "https://u:p@a.cn"]
)
def test_a_malformed_public_url_stops_with_the_variables_name(value: str) -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_PUBLIC_URL"):
        Settings.from_env({"GATEWAY_PUBLIC_URL": value})


def test_the_derived_address_follows_the_listening_host_and_port() -> None:
    settings = Settings.from_env({"GATEWAY_HOST": "::1", "GATEWAY_PORT": "9000"})
    assert settings.published_url == "http://[::1]:9000"


def test_serve_prints_the_public_url(home: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import main
    from gateway.cli import serve as serve_module

    monkeypatch.chdir(str(home))
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gateway.example.cn")
    monkeypatch.setattr(serve_module._Gunicorn, "run", lambda self: None)  # print the banner, serve nothing
    # serve sets PROMETHEUS_MULTIPROC_DIR for its workers: put it back afterwards, for the other tests
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    result = CliRunner().invoke(main, ["serve", "--port", "9124"])
    assert result.exit_code == 0, result.output
    assert "Graduate Exchange Gateway on https://gateway.example.cn (listening on 127.0.0.1:9124)" in result.output
    assert "  WSDL            https://gateway.example.cn/soap?wsdl" in result.output
    assert "http://127.0.0.1" not in result.output
