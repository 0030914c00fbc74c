"""Every bad token is a 401 with WWW-Authenticate; good HS256 and JWKS tokens get in."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from server.auth import TokenVerifier
from server.errors import Unauthorized
from server.settings import Settings
from tests.conftest import SECRET, client_for, make_token
from tests.jwks import JWKSServer, SigningKey


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def unsigned_token(sub: str = "alice") -> str:
    return (
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': sub, 'exp': time.time() + 86400})}."
    )


@pytest.fixture(scope="module")
def jwks() -> Iterator[JWKSServer]:
    with JWKSServer() as server:
        server.keys = [SigningKey("EdDSA", "ed-1"), SigningKey("RS256", "rsa-1")]
        yield server


@pytest.fixture
async def jwks_client(
    make_settings: Callable[..., Settings], jwks: JWKSServer
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(jwks_url=jwks.url)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def rsa_public_pem(key: SigningKey) -> bytes:
    return key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Bearer"}, "missing"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "missing"),
        (bearer("not-a-jwt"), "malformed"),
        (bearer(make_token("alice", ttl=timedelta(minutes=-5))), "expired"),
        (
            bearer(jwt.encode({"sub": "alice", "exp": time.time() + 86400}, "another-secret-" * 3)),
            "invalid",
        ),
        (bearer(unsigned_token()), "algorithm"),
        (bearer(jwt.encode({"exp": time.time() + 86400}, SECRET)), "'sub'"),
        (bearer(jwt.encode({"sub": "alice"}, SECRET)), "'exp'"),
        (bearer(jwt.encode({"sub": "", "exp": time.time() + 86400}, SECRET)), "subject"),
        (bearer(jwt.encode({"sub": 42, "exp": time.time() + 86400}, SECRET)), "invalid"),
    ],
)
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    response = await client.get("/api/tasks", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "unauthorized"
    assert reason in body["detail"]


async def test_a_real_hs256_token_works(client: httpx.AsyncClient) -> None:
    for algorithm in ("HS256", "HS384", "HS512"):
        token = jwt.encode(
            {"sub": "alice", "exp": time.time() + 86400}, SECRET, algorithm=algorithm
        )
        assert (await client.get("/api/tasks", headers=bearer(token))).status_code == 200


async def test_expiry_has_a_small_leeway(client: httpx.AsyncClient) -> None:
    token = make_token("alice", ttl=timedelta(seconds=-5))
    assert (await client.get("/api/tasks", headers=bearer(token))).status_code == 200


async def test_eddsa_token_from_jwks_over_http(
    jwks_client: httpx.AsyncClient, jwks: JWKSServer
) -> None:
    token = jwks.keys[0].token("alice", aud="http://localhost:3000", iss="http://localhost:3000")
    created = await jwks_client.post("/api/tasks", json={"title": "x"}, headers=bearer(token))
    assert created.status_code == 201
    rsa_token = jwks.keys[1].token("alice")
    listed = await jwks_client.get("/api/tasks", headers=bearer(rsa_token))
    assert len(listed.json()["data"]) == 1, "both keys of the set identify the same user"


async def test_hs_token_signed_with_the_rsa_public_key_is_refused(
    jwks_client: httpx.AsyncClient, jwks: JWKSServer, client: httpx.AsyncClient
) -> None:
    pem = rsa_public_pem(jwks.keys[1])
    payload = {"sub": "alice", "exp": time.time() + 86400}
    # PyJWT itself refuses to sign HS256 with a PEM key, so build the token by hand.
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    body = _b64(payload)
    signature = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
    for http in (jwks_client, client):
        response = await http.get("/api/tasks", headers=bearer(token))
        assert response.status_code == 401


async def test_token_whose_alg_differs_from_its_key_is_refused(
    jwks_client: httpx.AsyncClient, jwks: JWKSServer
) -> None:
    # A valid RS256 signature presented under the Ed25519 key's kid.
    rsa_key = jwks.keys[1]
    token = jwt.encode(
        {"sub": "alice", "exp": time.time() + 86400},
        rsa_key.private,
        algorithm="RS256",
        headers={"kid": "ed-1"},
    )
    response = await jwks_client.get("/api/tasks", headers=bearer(token))
    assert response.status_code == 401


async def test_jwks_setup_refuses_hs_tokens_without_a_secret(
    make_settings: Callable[..., Settings], jwks: JWKSServer
) -> None:
    async with client_for(make_settings(jwks_url=jwks.url, better_auth_secret="")) as client:
        response = await client.get("/api/tasks", headers=bearer(make_token("alice")))
        assert response.status_code == 401
        assert "not accepted" in response.json()["detail"]


async def test_issuer_and_audience_are_checked_when_configured(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(jwt_issuer="https://auth.example", jwt_audience="todo-chat")
    async with client_for(settings) as client:
        good = make_token("alice", iss="https://auth.example", aud="todo-chat")
        assert (await client.get("/api/tasks", headers=bearer(good))).status_code == 200
        for bad in (
            make_token("alice", iss="https://evil.example", aud="todo-chat"),
            make_token("alice", iss="https://auth.example", aud="other"),
            make_token("alice"),
        ):
            assert (await client.get("/api/tasks", headers=bearer(bad))).status_code == 401


async def test_a_rotated_key_works_at_once_even_after_a_flood_of_junk_kids(
    make_settings: Callable[..., Settings],
) -> None:
    with JWKSServer() as server:
        old = SigningKey("EdDSA", "old")
        server.keys = [old]
        verifier = TokenVerifier(make_settings(jwks_url=server.url))
        try:
            assert (await verifier.verify(old.token("alice")))["sub"] == "alice"
            assert server.requests == 1

            # Anyone can send tokens with made-up kids, many at once.
            junk = [SigningKey("EdDSA", f"junk-{i}").token() for i in range(30)]
            results = await asyncio.gather(
                *(verifier.verify(token) for token in junk), return_exceptions=True
            )
            assert all(isinstance(r, Unauthorized) for r in results)
            assert server.requests <= 3, "concurrent refetches collapse into one"

            # Right after the flood, the issuer rotates: the new key is accepted at once.
            new = SigningKey("ES256", "new")
            server.keys = [old, new]
            started = time.monotonic()
            assert (await verifier.verify(new.token("bob")))["sub"] == "bob"
            assert time.monotonic() - started < 2.5

            fetches = server.requests
            for token in junk[:5]:  # a kid just seen missing is answered without a fetch
                with pytest.raises(Unauthorized, match="unknown key"):
                    await verifier.verify(token)
            assert server.requests == fetches
        finally:
            await verifier.aclose()


async def test_an_issuer_outage_keeps_the_last_keys_and_is_logged_once(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with JWKSServer() as server:
        key = SigningKey("EdDSA", "k1")
        server.keys = [key]
        verifier = TokenVerifier(make_settings(jwks_url=server.url))
        try:
            assert await verifier.verify(key.token("alice"))
            server.down = True
            stranger = SigningKey("EdDSA", "k2")
            for _ in range(3):
                with pytest.raises(Unauthorized):
                    await verifier.verify(stranger.token())
                assert (await verifier.verify(key.token("carol")))["sub"] == "carol"
            failures = [r for r in caplog.records if "cannot fetch the signing keys" in r.message]
            assert len(failures) == 1 and "503" in failures[0].getMessage()

            server.down = False
            server.keys = [key, stranger]
            assert (await verifier.verify(stranger.token("dave")))["sub"] == "dave"
            assert any("reachable again" in r.message for r in caplog.records)
        finally:
            await verifier.aclose()


async def test_no_signing_keys_at_all_is_503(
    make_settings: Callable[..., Settings], clean_database: None
) -> None:
    with JWKSServer() as server:
        server.down = True
        key = SigningKey("EdDSA", "k1")
        async with client_for(make_settings(jwks_url=server.url)) as client:
            response = await client.get("/api/tasks", headers=bearer(key.token()))
            assert response.status_code == 503
            assert response.json()["error"] == "unavailable"
            assert "Retry-After" in response.headers
            server.down = False
            server.keys = [key]
            await asyncio.sleep(1.1)
            retried = await client.get("/api/tasks", headers=bearer(key.token()))
            assert retried.status_code == 200
