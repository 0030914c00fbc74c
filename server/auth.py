"""JWT verification: Better Auth's shared secret (HS*) or asymmetric keys from a JWKS URL."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
import jwt

from server.errors import Unauthorized, Unavailable
from server.models import OWNER_MAX
from server.settings import Settings

log = logging.getLogger("todo_chat.auth")
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# A bearer JWT is a few hundred bytes to ~1 KiB; anything far larger is not one of ours.
MAX_TOKEN_LENGTH = 8 * 1024
# Longer-lived tokens are a mistake (or a forgery made with a leaked secret to last forever).
MAX_TOKEN_LIFETIME = timedelta(days=366)
_HEADER_TEXT_MAX = 256
ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256"})


class JWKSCache:
    """The issuer's key set: fetched lazily, again when stale, and again for an unknown `kid`.

    Key rotation must just work, and junk tokens must not be able to stop it:
    - a token with an unknown `kid` fetches the set again; fetches are at least `interval`
      apart, and requests that need one at the same time share it, so a flood of made-up
      `kid`s costs the issuer one fetch a second and delays a real new key by a second at most;
    - a `kid` that a fetch made after it was first seen did not contain is answered at once
      for `unknown_ttl` seconds, without waiting for another fetch;
    - when the issuer cannot be reached, the last good set keeps serving (a 503 only when
      there is none yet), the failure is logged once with its cause, and the recovery too.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        ttl_seconds: float = 600,
        interval: float = 1.0,
        unknown_ttl: float = 60,
    ) -> None:
        self.url = url
        self._client = client
        self._ttl = ttl_seconds
        self._interval = interval
        self._unknown_ttl = unknown_ttl
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # the last successful fetch
        self._attempted_at = float("-inf")
        self._fetching: asyncio.Task[None] | None = None
        self._unknown: dict[str, float] = {}  # kid -> when a fetch last missed it
        self._failing = False

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        asked = time.monotonic()
        if asked - self._fetched_at > self._ttl:
            await self._refresh()
        key = self._lookup(kid)
        if key is None and not self._recently_unknown(kid, asked):
            # Only a fetch that began after this token arrived can say its key is unknown:
            # one already under way may have left before the issuer published the key.
            while self._attempted_at < asked:
                await self._refresh()
                if self._failing:
                    break
            key = self._lookup(kid)
            if key is None and kid is not None and not self._failing:
                if len(self._unknown) > 10_000:
                    self._unknown.clear()
                self._unknown[kid] = time.monotonic()
        if key is None:
            raise Unauthorized("token signed with an unknown key")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _recently_unknown(self, kid: str | None, now: float) -> bool:
        missed = self._unknown.get(kid) if kid is not None else None
        return missed is not None and now - missed < self._unknown_ttl

    async def _refresh(self) -> None:
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
        await asyncio.shield(self._fetching)

    async def _fetch(self) -> None:
        try:
            wait = self._attempted_at + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._attempted_at = time.monotonic()
            try:
                response = await self._client.get(self.url, timeout=5)
                response.raise_for_status()
                key_set = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                if not self._failing:
                    log.warning("cannot fetch the signing keys from %s: %r", self.url, exc)
                    self._failing = True
                if not self._keys:
                    raise Unavailable(
                        "the token signing keys cannot be fetched right now: retry in a few seconds"
                    ) from exc
                return  # keep serving with the keys we had
            if self._failing:
                log.warning("signing keys from %s are reachable again", self.url)
                self._failing = False
            self._keys = {key.key_id: key for key in key_set.keys}
            self._fetched_at = time.monotonic()
            self._unknown = {
                kid: missed for kid, missed in self._unknown.items() if kid not in self._keys
            }
        finally:
            self._fetching = None


class TokenVerifier:
    """Verifies bearer tokens, remembering each verified token until it expires.

    A client sends the same token on every request until it expires; checking its signature
    and claims again each time is most of the cost of auth. The cache holds claims only for
    tokens that passed every check, is bounded, and never answers for a token past `exp`
    (plus the leeway, as the check itself allows).
    """

    CACHE_SIZE = 10_000

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._secret = settings.better_auth_secret
        self._issuer = settings.jwt_issuer or None
        self._audience = settings.jwt_audience or None
        self._leeway = timedelta(seconds=settings.jwt_leeway_seconds)
        self._client = client or httpx.AsyncClient()
        self._jwks = JWKSCache(settings.jwks_url, self._client) if settings.jwks_url else None
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims, or raise Unauthorized saying what is wrong."""
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() <= cached[0]:
                return cached[1]
            del self._verified[token]
        claims = await self._verify(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()  # simple and bounded; hot tokens come back at once
        self._verified[token] = (claims["exp"] + self._leeway.total_seconds(), claims)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized(f"token is longer than {MAX_TOKEN_LENGTH} characters")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("malformed token") from exc
        # The header is not signed yet: each field is checked for its type before any use.
        for name in ("alg", "kid", "typ"):
            value = header.get(name)
            if (name == "alg" or value is not None) and (
                not isinstance(value, str) or len(value) > _HEADER_TEXT_MAX
            ):
                raise Unauthorized(f"token header {name!r} must be a short string")
        algorithm = header["alg"]
        key: Any
        if algorithm in HMAC_ALGORITHMS and self._secret:
            key = self._secret
        elif algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            # A PyJWK is bound to its own algorithm: PyJWT refuses a token whose header says
            # otherwise, which closes the HS/RS confusion on this path.
            key = await self._jwks.key_for(header.get("kid"))
        else:
            raise Unauthorized(f"token algorithm {algorithm!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                leeway=self._leeway,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token has expired") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"token has no {exc.claim!r} claim") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # TypeError/ValueError: a key of the wrong family for the algorithm.
            raise Unauthorized(f"invalid token: {exc}") from exc
        # PyJWT reads a numeric string as a time; everything after it expects a number.
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise Unauthorized(f"token claim {name!r} must be a number (seconds since 1970)")
        subject = claims.get("sub")
        if (
            not isinstance(subject, str)
            or not subject
            or len(subject) > OWNER_MAX
            or not subject.isprintable()
        ):
            raise Unauthorized("token subject is not a valid user id")
        if claims["exp"] - time.time() > MAX_TOKEN_LIFETIME.total_seconds():
            raise Unauthorized("token lifetime is longer than a year")
        return claims


def issue_token(secret: str, user_id: str, *, ttl: timedelta, **claims: Any) -> str:
    """An HS256 token as Better Auth would sign it with the shared secret."""
    now = int(time.time())
    payload = {"sub": user_id, "iat": now, "exp": now + int(ttl.total_seconds()), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")
