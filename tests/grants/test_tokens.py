"""Grant tokens (ES256 compact JWS), short codes and QR codes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from gateway.errors import AuthorisationInvalid, ConfigurationError
from gateway.grants import tokens
from gateway.grants.tokens import GrantTokens
from gateway.pki.keystore import load_private_key
from gateway.settings import Settings

NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)
GRANT = "7d1f5c64-3f0e-4a1b-9f7e-2b1c3d4e5f60"
VERIFIER = "111101080000000075"


@pytest.fixture
def issuer(settings: Settings) -> GrantTokens:
    return GrantTokens.from_keys_dir(settings.keys_dir)


def segments(token: str) -> list[dict[str, object]]:
    return [json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in token.split(".")[:2]]


def test_gateway_init_made_a_dedicated_p256_key(settings: Settings) -> None:
    path = tokens.token_key_path(settings.keys_dir)
    assert path.exists() and path.stat().st_mode & 0o077 == 0
    assert "token-key.pem" in path.name and path.parent.name == "grants"
    assert tokens.ensure_token_key(settings.keys_dir) is False  # reused, not replaced


def test_a_token_names_grant_audience_and_expiry(issuer: GrantTokens) -> None:
    token = issuer.issue(GRANT, VERIFIER, NOW, NOW + timedelta(days=7))
    header, claims = segments(token)
    assert header == {"alg": "ES256", "typ": "grant+jwt", "kid": issuer.key_id}
    assert claims == {
        "iss": tokens.ISSUER,
        "sub": GRANT,
        "aud": VERIFIER,
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(days=7)).timestamp()),
        "jti": GRANT,
    }
    read = issuer.read(token)
    assert (read.grant_id, read.audience, read.expires_at) == (GRANT, VERIFIER, NOW + timedelta(days=7))


def test_an_expired_token_still_reads_the_database_decides(issuer: GrantTokens) -> None:
    token = issuer.issue(GRANT, VERIFIER, NOW - timedelta(days=30), NOW - timedelta(days=23))
    assert issuer.read(token).grant_id == GRANT


def forged_tokens(issuer: GrantTokens, own_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """Tokens the gateway must refuse. The wrong type and the missing claims are signed with the
    gateway's own key, so that only their own check can refuse them."""
    good = issuer.issue(GRANT, VERIFIER, NOW, NOW + timedelta(days=7))
    own = {"kid": issuer.key_id}
    other_key = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": tokens.ISSUER, "sub": GRANT, "aud": VERIFIER, "iat": 1, "exp": 2, "jti": GRANT}
    head, _body, signature = good.split(".")
    tampered_claims = base64.urlsafe_b64encode(json.dumps({**claims, "aud": "12110105400000002L"}).encode())
    return {
        "other key": jwt.encode(claims, other_key, algorithm="ES256", headers={"typ": "grant+jwt"}),
        "tampered": f"{head}.{tampered_claims.decode().rstrip('=')}.{signature}",
        "none algorithm": jwt.encode(claims, None, algorithm="none", headers={"typ": "grant+jwt"}),
        "HS256": jwt.encode(
            claims, "a secret of at least thirty-two bytes!", algorithm="HS256", headers={"typ": "grant+jwt"}
        ),
        "wrong typ": jwt.encode(claims, own_key, algorithm="ES256", headers={**own, "typ": "JWT"}),
        "missing claim": jwt.encode({"sub": GRANT}, own_key, algorithm="ES256", headers={**own, "typ": "grant+jwt"}),
        "not a jws": "abc.def",
        "truncated": good[:-10],
    }


def test_forged_and_malformed_tokens_are_invalid(issuer: GrantTokens, settings: Settings) -> None:
    own_key = load_private_key(tokens.token_key_path(settings.keys_dir))
    assert isinstance(own_key, ec.EllipticCurvePrivateKey)
    claims = {"iss": tokens.ISSUER, "sub": GRANT, "aud": VERIFIER, "iat": 1, "exp": 2, "jti": GRANT}
    # the control: with the right type and every claim, the same key's token reads
    control = jwt.encode(claims, own_key, algorithm="ES256", headers={"kid": issuer.key_id, "typ": "grant+jwt"})
    assert issuer.read(control).grant_id == GRANT
    for name, token in forged_tokens(issuer, own_key).items():
        with pytest.raises(AuthorisationInvalid):
            issuer.read(token)
            pytest.fail(f"{name} was read")


def test_a_missing_token_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="gateway init"):
        GrantTokens.from_keys_dir(tmp_path)


def test_short_codes_use_the_no_confusion_alphabet() -> None:
    codes = {tokens.new_short_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(tokens.SHORT_CODE_ALPHABET) for c in codes)
    assert not set("01ILO") & set(tokens.SHORT_CODE_ALPHABET)
    assert tokens.display_short_code("ABCD2345") == "ABCD-2345"
    assert tokens.normalise_short_code(" abcd-2345 ") == "ABCD2345"
    assert tokens.normalise_short_code("ABCD-0345") is None  # 0 is not in the alphabet
    assert tokens.normalise_short_code("ABCD-23456") is None


def test_the_qr_code_is_an_inline_svg() -> None:
    svg = tokens.qr_svg("ABCD-2345")
    root = etree.fromstring(svg.encode())
    assert etree.QName(root).localname == "svg"
    assert "path" in svg and len(svg) > 200
