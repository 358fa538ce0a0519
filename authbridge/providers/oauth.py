"""Sign in with OAuth 2.0 and OpenID Connect (DESIGN §17.3): generic OIDC by discovery, and the
presets of :mod:`authbridge.providers.oauth_presets`.

The flow:

1. ``POST {prefix}/signin`` ``{"provider": id, "params": {"redirectTo"}}`` → :meth:`sign_in`
   stores the flow (``auth_verifiers``: the state's hash, the PKCE verifier, the nonce, where to go
   after, the tab) and binds it to this browser with a short-lived HttpOnly cookie holding a random
   secret (only its hash is stored); answers :class:`Redirect` to the authorization endpoint
   (authorization code, PKCE S256 always, ``nonce`` for OpenID providers).
2. The provider sends the browser to ``{prefix}/callback/<id>`` (``GET``; ``POST`` for
   ``form_post``). The flow is taken out of the table (a state works once), the cookie must match,
   ``iss`` (RFC 9207) must be the provider's, the code is exchanged once (with the verifier), the ID
   token is fully checked (signature through :class:`~authbridge.jwks.JwksCache`, algorithm
   allow-list, ``iss``, ``aud``, ``azp``, ``exp``, ``iat``, ``nonce``), and userinfo fills in what
   the ID token lacks. Then the identity maps to a user (below) and the session starts.

Accounts: one ``auth_accounts`` row per (provider, subject). A new identity whose email belongs to
an existing user links to that user only when the provider asserts the email verified **and** the
user's email is verified too; otherwise :class:`~authbridge.errors.AccountNotLinked` (an attacker
cannot pre-register a victim's address elsewhere and inherit their account). A new user gets the
provider's email only when the provider verified it.

Every failure raises one of ``OAuthDenied``, ``OAuthStateInvalid``, ``OAuthProviderError``,
``AccountNotLinked`` (the browser lands on the sign-in page with ``?error=<Code>``) and logs why on
``authbridge.oauth`` — never a code, state, token or secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt

from .._extras import require
from ..config import OAuthProviderConfig
from ..errors import (
    AccountNotLinked,
    ConfigError,
    IdentityInUse,
    InvalidEmail,
    OAuthDenied,
    OAuthProviderError,
    OAuthStateInvalid,
    TokenError,
)
from ..jwks import JwksCache, tls_context
from ..ratelimit import Bucket, client_key
from ..routing import safe_redirect_path
from ..store import Conflict
from ..store.oauth import Flow, Identity, StoredTokens
from . import (
    Outcome,
    ProviderContext,
    ProviderRoute,
    Redirect,
    RouteRequest,
    SignedIn,
    SignInRequest,
    normalize_email,
)
from .oauth_presets import PRESETS, Preset

if TYPE_CHECKING:
    from ..store.oauth import OAuthRepository

try:
    import httpx
except ImportError:  # pragma: no cover - without the [oauth] extra; OAuthProvider refuses to start
    httpx = None  # type: ignore[assignment]

__all__ = ["FLOW_COOKIE_PREFIX", "OAuthProvider"]

logger = logging.getLogger("authbridge.oauth")

FLOW_COOKIE_PREFIX = "authbridge.oauth."
"""Flow cookies are named ``authbridge.oauth.<16 hex of the state's hash>``: one per flow, so two
tabs can sign in at once."""
FLOW_LIFETIME = timedelta(minutes=10)
TOKEN_REFRESH_MARGIN = timedelta(seconds=60)
_TAB_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_PARAM = 4096
_MAX_RESPONSE = 256 * 1024
_DEFAULT_SCOPES = ("openid", "email", "profile")
_ID_TOKEN_ALGORITHMS = ("RS256", "ES256")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _clean(value: Any, limit: int = 120) -> str:
    """A provider-supplied string fit for a log line (printable, bounded)."""
    text = value if isinstance(value, str) else repr(value)
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def flow_cookie_name(state: str) -> str:
    """The cookie that binds the flow of ``state`` to the browser that started it."""
    return FLOW_COOKIE_PREFIX + _sha256(state)[:16]


@dataclass(frozen=True, slots=True)
class _Endpoints:
    authorization_url: str
    token_url: str
    userinfo_url: str | None
    issuer: str | None
    iss_parameter: bool
    """The provider says it sends ``iss`` in authorization responses (RFC 9207): require it."""


@dataclass(frozen=True, slots=True)
class _TokenResponse:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    id_token: str | None


class OAuthProvider:
    """One OAuth 2.0 / OpenID Connect provider, configured by :class:`OAuthProviderConfig`.

    Args:
        config: the provider's settings (``AUTHBRIDGE_OAUTH_<ID>_*``).
        timeout: the longest any one call to the provider may take (discovery, token, userinfo,
            keys), end to end.
        flow_lifetime: how long a started flow may take to come back.

    Raises:
        ConfigError: a generic provider without an issuer, or an incomplete Apple setup.
    """

    redirects = True
    """Signs in by sending the browser away (sign-in pages show a button for it)."""

    def __init__(
        self,
        config: OAuthProviderConfig,
        *,
        timeout: timedelta = timedelta(seconds=10),
        flow_lifetime: timedelta = FLOW_LIFETIME,
    ) -> None:
        require("httpx", "oauth", "OAuth sign-in")
        self.config = config
        self.id = config.id
        self.preset: Preset | None = PRESETS.get(config.id)
        self.timeout = timeout
        self.flow_lifetime = flow_lifetime
        preset = self.preset
        if preset is None and config.issuer is None:
            raise ConfigError(
                f"OAuth provider {config.id!r} is not a preset "
                f"({', '.join(sorted(PRESETS))}): set AUTHBRIDGE_OAUTH_{config.env_name}_ISSUER"
            )
        self.name = config.name or (preset.name if preset else config.id)
        """The button label."""
        self.scopes = config.scopes or (preset.scopes if preset else _DEFAULT_SCOPES)
        self.oidc = "openid" in self.scopes or (preset is not None and preset.oidc)
        self.response_mode = preset.response_mode if preset else "query"
        self._apple_key: Any = None
        if config.id == "apple" and config.client_secret is not None:
            self._apple_key = self._load_apple_key(config)
        self._jwks: JwksCache | None = None
        self._token_locks: dict[tuple[str, str], asyncio.Lock] = {}

    # -- configuration ---------------------------------------------------------------------------

    @staticmethod
    def _load_apple_key(config: OAuthProviderConfig) -> Any:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        secret = config.client_secret or ""
        if "PRIVATE KEY" not in secret:
            return None  # a ready-made client secret JWT
        if not config.team_id or not config.key_id:
            raise ConfigError(
                "OAuth provider 'apple': a private key needs AUTHBRIDGE_OAUTH_APPLE_TEAM_ID "
                "and AUTHBRIDGE_OAUTH_APPLE_KEY_ID"
            )
        try:
            key = load_pem_private_key(secret.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise ConfigError("OAuth provider 'apple': client secret is not a PEM key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("OAuth provider 'apple': the key must be an EC (P-256) key")
        return key

    def _client_secret(self, now: datetime) -> str | None:
        if self._apple_key is None:
            return self.config.client_secret
        # Apple wants the client secret as a JWT signed with the developer key (ES256).
        iat = int(now.timestamp())
        return jwt.encode(
            {
                "iss": self.config.team_id,
                "iat": iat,
                "exp": iat + 300,
                "aud": "https://appleid.apple.com",
                "sub": self.config.client_id,
            },
            self._apple_key,
            algorithm="ES256",
            headers={"kid": self.config.key_id},
        )

    def _cache(self, ctx: ProviderContext) -> JwksCache:
        if self._jwks is None:
            preset, config = self.preset, self.config
            issuer = config.issuer or (preset.issuer if preset else None)
            jwks_url = config.jwks_url or (
                preset.jwks_url if preset and config.issuer is None else None
            )
            self._jwks = JwksCache(
                issuer=issuer,
                jwks_url=jwks_url,
                algorithms=_ID_TOKEN_ALGORITHMS,
                clock=ctx.clock,
                timeout=self.timeout,
            )
        return self._jwks

    @property
    def jwks(self) -> JwksCache | None:
        """The key cache of this provider's ID tokens (``None`` before first use)."""
        return self._jwks

    async def _endpoints(self, ctx: ProviderContext) -> _Endpoints:
        config, preset = self.config, self.preset
        if config.issuer is None and preset is not None:
            return _Endpoints(
                config.authorization_url or preset.authorization_url,
                config.token_url or preset.token_url,
                config.userinfo_url or preset.userinfo_url,
                preset.issuer,
                False,
            )
        try:
            metadata = await self._cache(ctx).metadata()
        except TokenError as exc:
            raise self._provider_error(f"discovery failed: {exc}") from exc
        try:
            authorization = config.authorization_url or str(metadata["authorization_endpoint"])
            token = config.token_url or str(metadata["token_endpoint"])
        except KeyError as exc:
            raise self._provider_error(f"discovery lacks {exc.args[0]}") from exc
        userinfo = config.userinfo_url or metadata.get("userinfo_endpoint")
        return _Endpoints(
            authorization,
            token,
            userinfo if isinstance(userinfo, str) else None,
            str(metadata.get("issuer")),
            metadata.get("authorization_response_iss_parameter_supported") is True,
        )

    def redirect_uri(self, ctx: ProviderContext) -> str:
        """The callback URL to register at the provider: ``{site_url}{prefix}/callback/<id>``."""
        site = ctx.config.site_url.rstrip("/")
        return f"{site}{ctx.config.route_prefix}/callback/{self.id}"

    def _repo(self, ctx: ProviderContext) -> OAuthRepository:
        if ctx.oauth is None:  # pragma: no cover - Auth always provides it
            raise ConfigError("OAuth needs the provider context's oauth repository")
        return ctx.oauth

    def _provider_error(self, why: str) -> OAuthProviderError:
        logger.warning("oauth %s: %s", self.id, why)
        return OAuthProviderError(why)

    # -- the provider interface ------------------------------------------------------------------

    def routes(self) -> Sequence[ProviderRoute]:
        """``callback/<id>``: GET, and POST for ``form_post`` (a cross-site POST whose proof is
        the state bound to the browser's cookie)."""
        form_post = self.response_mode == "form_post"
        return [
            ProviderRoute(
                f"callback/{self.id}",
                ("GET", "POST") if form_post else ("GET",),
                self.callback,
                check_origin=not form_post,
            )
        ]

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        """Start a flow: ``{"redirectTo"?}`` → :class:`Redirect` to the authorization endpoint.

        Raises:
            TooManyAttempts: this client started too many flows.
            OAuthProviderError: discovery failed (the provider is down or slow).
            StoreUnavailable: the database failed.
        """
        return await self.start(ctx, params, request)

    async def start(
        self,
        ctx: ProviderContext,
        params: Mapping[str, Any],
        request: SignInRequest,
        *,
        link_user_id: str | None = None,
    ) -> Redirect:
        """Start a flow (``link_user_id``: add this provider to that signed-in user instead).

        Raises:
            TooManyAttempts: this client started too many flows.
            OAuthProviderError: discovery failed.
            StoreUnavailable: the database failed.
        """
        if request.ip:
            # Every start stores a flow: a client may start at most ip_attempts per period.
            bucket = Bucket(
                f"oauth-start:ip:{client_key(request.ip)}", ctx.config.rate_limit.ip_attempts
            )
            async with ctx.limiter.attempt(keep=[bucket]) as attempt:
                attempt.succeed()
        endpoints = await self._endpoints(ctx)
        now = ctx.clock()
        redirect_to = safe_redirect_path(params.get("redirectTo"))
        tab = request.tab
        if not (isinstance(tab, str) and 6 <= len(tab) <= 40 and set(tab) <= _TAB_CHARS):
            tab = None
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32) if self.oidc else None
        verifier = secrets.token_urlsafe(48)
        browser_secret = secrets.token_urlsafe(32)
        flow = Flow(
            provider=self.id,
            browser_hash=_sha256(browser_secret),
            code_verifier=verifier,
            nonce=nonce,
            redirect_to=redirect_to,
            tab=tab,
            link_user_id=link_user_id,
            expires_at=now + self.flow_lifetime,
        )
        await self._repo(ctx).save_flow(_sha256(state), flow, now)
        form_post = self.response_mode == "form_post"
        request.set_cookie(
            flow_cookie_name(state),
            browser_secret,
            max_age=int(self.flow_lifetime.total_seconds()),
            # form_post comes back as a cross-site POST: only SameSite=None cookies ride along.
            same_site="None" if form_post else "Lax",
        )
        query: dict[str, str] = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.redirect_uri(ctx),
            "scope": " ".join(self.scopes),
            "state": state,
            "code_challenge": _s256(verifier),
            "code_challenge_method": "S256",
        }
        if nonce is not None:
            query["nonce"] = nonce
        if form_post:
            query["response_mode"] = "form_post"
        if self.preset is not None:
            query.update(self.preset.authorize_params)
        separator = "&" if "?" in endpoints.authorization_url else "?"
        return Redirect(endpoints.authorization_url + separator + urlencode(query))

    async def callback(self, ctx: ProviderContext, route: RouteRequest) -> Outcome:
        """Finish a flow at ``{prefix}/callback/<id>``.

        Raises:
            OAuthStateInvalid: no state, an unknown or used one, another browser's, or expired.
            OAuthDenied: the user refused at the provider.
            OAuthProviderError: an error from the provider, a mismatched ``iss``, a failed code
                exchange, an ID token or userinfo answer that fails a check, a timeout.
            AccountNotLinked: the email belongs to a user this identity may not be linked to.
            StoreUnavailable: the database failed.
        """
        params = route.body if route.method == "POST" else route.query
        request = route.sign_in
        state = params.get("state")
        if not isinstance(state, str) or not state or len(state) > _MAX_PARAM:
            logger.warning("oauth %s: callback without a state", self.id)
            raise OAuthStateInvalid("no state")
        cookie_name = flow_cookie_name(state)
        cookie = request.cookies.get(cookie_name)
        form_post = self.response_mode == "form_post"
        flow = await self._repo(ctx).take_flow(_sha256(state))
        if cookie is not None:
            request.clear_cookie(cookie_name, same_site="None" if form_post else "Lax")
        if flow is None or flow.provider != self.id:
            logger.warning("oauth %s: unknown, used or expired state", self.id)
            raise OAuthStateInvalid("unknown state")
        if cookie is None or not secrets.compare_digest(_sha256(cookie), flow.browser_hash):
            logger.warning("oauth %s: the state was not started by this browser", self.id)
            raise OAuthStateInvalid("state not bound to this browser")
        if ctx.clock() >= flow.expires_at:
            logger.warning("oauth %s: the flow expired", self.id)
            raise OAuthStateInvalid("flow expired")
        endpoints = await self._endpoints(ctx)
        self._check_iss(params, endpoints)
        error = params.get("error")
        if error is not None:
            if error == "access_denied":
                logger.info("oauth %s: the user denied access", self.id)
                raise OAuthDenied()
            raise self._provider_error(
                f"the provider answered error={_clean(error, 60)} "
                f"({_clean(params.get('error_description', ''))})"
            )
        code = params.get("code")
        if not isinstance(code, str) or not code or len(code) > _MAX_PARAM:
            raise self._provider_error("the callback carries no code")
        tokens = await self._exchange(ctx, endpoints, code, flow)
        identity = await self._identity(ctx, endpoints, tokens, flow, params)
        account_id, user_id, created = await self._account(ctx, identity, flow)
        if self.config.store_provider_tokens:
            await self._repo(ctx).save_tokens(
                StoredTokens(
                    account_id, tokens.access_token, tokens.refresh_token, tokens.expires_at
                ),
                ctx.clock(),
            )
        return SignedIn(
            user_id,
            redirect_to=flow.redirect_to or "/",
            tab=flow.tab,
            new_user=created,
            linked=identity.subject if flow.link_user_id is not None else None,
        )

    # -- callback steps --------------------------------------------------------------------------

    def _check_iss(self, params: Mapping[str, Any], endpoints: _Endpoints) -> None:
        """RFC 9207: the authorization response names its issuer; a mismatch is a mix-up."""
        iss = params.get("iss")
        if iss is None:
            if endpoints.iss_parameter:
                raise self._provider_error("the authorization response lacks iss (RFC 9207)")
            return
        expected = endpoints.issuer
        if expected is None or not isinstance(iss, str) or iss != expected:
            raise self._provider_error(
                f"authorization response from issuer {_clean(iss)!r}, expected {expected!r} "
                "(mix-up?)"
            )

    async def _http(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[int, Any]:
        """One bounded call to the provider: status and parsed JSON (``None`` if not JSON).

        Raises:
            OAuthProviderError: network error or timeout.
        """
        seconds = self.timeout.total_seconds()

        async def call() -> tuple[int, Any]:
            async with (
                httpx.AsyncClient(
                    timeout=httpx.Timeout(seconds, connect=min(seconds, 3.0)),
                    follow_redirects=False,
                    verify=tls_context(),
                ) as client,
                client.stream(method, url, **kwargs) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_RESPONSE:
                        raise self._provider_error(f"{what}: the answer is too large")
                try:
                    return response.status_code, json.loads(bytes(body))
                except ValueError:
                    return response.status_code, None

        try:
            return await asyncio.wait_for(call(), seconds)
        except asyncio.TimeoutError as exc:
            raise self._provider_error(f"{what}: no answer within {self.timeout}") from exc
        except httpx.HTTPError as exc:
            raise self._provider_error(f"{what}: {type(exc).__name__}") from exc

    async def _token_request(
        self, ctx: ProviderContext, endpoints: _Endpoints, form: dict[str, str], what: str
    ) -> _TokenResponse:
        secret = self._client_secret(ctx.clock())
        token_auth = self.preset.token_auth if self.preset else "basic"
        auth: httpx.BasicAuth | None = None
        if secret is None:
            form["client_id"] = self.config.client_id
        elif token_auth == "basic":
            # RFC 6749 §2.3.1: the credentials are form-encoded before Basic encoding.
            auth = httpx.BasicAuth(_form_encode(self.config.client_id), _form_encode(secret))
        else:
            form.update(client_id=self.config.client_id, client_secret=secret)
        status, document = await self._http(
            "POST",
            endpoints.token_url,
            what,
            data=form,
            auth=auth,
            headers={"Accept": "application/json"},
        )
        if not isinstance(document, dict):
            raise self._provider_error(f"{what}: HTTP {status}, not a JSON object")
        if status != 200 or "error" in document:
            raise self._provider_error(
                f"{what}: HTTP {status}, error={_clean(document.get('error'), 60)} "
                f"({_clean(document.get('error_description', ''))})"
            )
        access = document.get("access_token")
        if not isinstance(access, str) or not access:
            raise self._provider_error(f"{what}: no access_token")
        expires_in = document.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at = ctx.clock() + timedelta(seconds=max(0, min(expires_in, 10**8)))
        refresh = document.get("refresh_token")
        id_token = document.get("id_token")
        return _TokenResponse(
            access,
            refresh if isinstance(refresh, str) and refresh else None,
            expires_at,
            id_token if isinstance(id_token, str) and id_token else None,
        )

    async def _exchange(
        self, ctx: ProviderContext, endpoints: _Endpoints, code: str, flow: Flow
    ) -> _TokenResponse:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri(ctx),
            "code_verifier": flow.code_verifier,
        }
        return await self._token_request(ctx, endpoints, form, "code exchange")

    async def _identity(
        self,
        ctx: ProviderContext,
        endpoints: _Endpoints,
        tokens: _TokenResponse,
        flow: Flow,
        params: Mapping[str, Any],
    ) -> Identity:
        profile = self.preset.profile if self.preset else "oidc"
        if profile == "github":
            return await self._github_identity(endpoints, tokens)
        if profile == "discord":
            return await self._discord_identity(endpoints, tokens)
        claims: dict[str, Any] = {}
        if self.oidc:
            if tokens.id_token is None:
                raise self._provider_error("the token response has no id_token")
            claims = await self._verify_id_token(ctx, tokens.id_token, flow)
        needs_more = not claims.get("email") or not claims.get("name")
        if endpoints.userinfo_url is not None and (needs_more or not self.oidc):
            status, info = await self._http(
                "GET",
                endpoints.userinfo_url,
                "userinfo",
                headers={
                    "Authorization": f"Bearer {tokens.access_token}",
                    "Accept": "application/json",
                },
            )
            if status != 200 or not isinstance(info, dict):
                raise self._provider_error(f"userinfo: HTTP {status}")
            if claims and info.get("sub") != claims.get("sub"):
                # OIDC Core §5.3.2: a userinfo answer for someone else must not be used.
                raise self._provider_error("userinfo sub differs from the ID token's")
            claims = {**info, **{k: v for k, v in claims.items() if v not in (None, "")}}
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise self._provider_error("no usable subject")
        name = claims.get("name")
        if not isinstance(name, str) and self.id == "apple":
            name = _apple_name(params.get("user"))
        verified_claim = claims.get("email_verified")
        verified = verified_claim is True or verified_claim == "true"
        if verified_claim is None and self.preset is not None:
            verified = self.preset.email_verified_by_default
        picture = claims.get("picture")
        return Identity(
            subject,
            _email(claims.get("email")),
            verified,
            name if isinstance(name, str) and name else None,
            picture if isinstance(picture, str) and picture.startswith("https://") else None,
        )

    async def _verify_id_token(
        self, ctx: ProviderContext, id_token: str, flow: Flow
    ) -> dict[str, Any]:
        preset = self.preset
        issuer_check = preset.issuer_check if preset and self.config.issuer is None else None
        try:
            claims = await self._cache(ctx).verify(
                id_token,
                audience=self.config.client_id,
                issuer=issuer_check,
                require=("iss", "aud", "exp", "iat", "sub"),
            )
        except TokenError as exc:
            raise self._provider_error(f"ID token refused: {exc.reason}") from exc
        except ConfigError as exc:  # no issuer to compare with
            raise self._provider_error(f"ID token: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.config.client_id:
            raise self._provider_error("ID token azp is not this client")
        nonce = claims.get("nonce")
        if (
            flow.nonce is None
            or not isinstance(nonce, str)
            or not secrets.compare_digest(nonce.encode(), flow.nonce.encode())
        ):
            raise self._provider_error("ID token nonce does not match this flow")
        return claims

    async def _api_get(self, url: str, token: str, what: str) -> Any:
        status, document = await self._http(
            "GET",
            url,
            what,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json, application/json",
            },
        )
        if status != 200 or document is None:
            raise self._provider_error(f"{what}: HTTP {status}")
        return document

    async def _github_identity(self, endpoints: _Endpoints, tokens: _TokenResponse) -> Identity:
        base = endpoints.userinfo_url or "https://api.github.com/user"
        user = await self._api_get(base, tokens.access_token, "GitHub user")
        emails = await self._api_get(base + "/emails", tokens.access_token, "GitHub emails")
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise self._provider_error("GitHub user: no numeric id")
        primary = (
            next((e for e in emails if isinstance(e, dict) and e.get("primary") is True), None)
            if isinstance(emails, list)
            else None
        )
        email = _email(primary.get("email")) if primary else None
        name = user.get("name") or user.get("login")
        avatar = user.get("avatar_url")
        return Identity(
            str(user["id"]),
            email,
            bool(primary and primary.get("verified") is True),
            name if isinstance(name, str) else None,
            avatar if isinstance(avatar, str) and avatar.startswith("https://") else None,
        )

    async def _discord_identity(self, endpoints: _Endpoints, tokens: _TokenResponse) -> Identity:
        url = endpoints.userinfo_url or "https://discord.com/api/users/@me"
        user = await self._api_get(url, tokens.access_token, "Discord user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            raise self._provider_error("Discord user: no id")
        name = user.get("global_name") or user.get("username")
        avatar = user.get("avatar")
        image = (
            f"https://cdn.discordapp.com/avatars/{user['id']}/{avatar}.png"
            if isinstance(avatar, str) and avatar.isalnum()
            else None
        )
        return Identity(
            user["id"],
            _email(user.get("email")),
            user.get("verified") is True,
            name if isinstance(name, str) else None,
            image,
        )

    async def _account(
        self, ctx: ProviderContext, identity: Identity, flow: Flow
    ) -> tuple[str, str, bool]:
        """``(account_id, user_id, created)`` for this identity: its account, a safe link, or a
        new user (``created``). One retry covers two first sign-ins of the same identity racing.

        Raises:
            AccountNotLinked: the email belongs to a user it may not be linked to.
            IdentityInUse: a link flow for an identity another user already has.
        """
        repo = self._repo(ctx)
        for attempt in range(2):
            found = await repo.account(self.id, identity.subject)
            if found is not None:
                if flow.link_user_id is not None and found[1] != flow.link_user_id:
                    logger.warning(
                        "oauth %s: the identity to link belongs to another user", self.id
                    )
                    raise IdentityInUse()
                return (*found, False)
            now = ctx.clock()
            try:
                if flow.link_user_id is not None:
                    linked = await repo.link(flow.link_user_id, self.id, identity.subject, now)
                    return linked, flow.link_user_id, False
                owner = await repo.email_owner(identity.email) if identity.email else None
                if owner is not None:
                    if identity.email_verified and owner.verified:
                        account_id = await repo.link(owner.user_id, self.id, identity.subject, now)
                        logger.info("oauth %s: linked to a user by verified email", self.id)
                        return account_id, owner.user_id, False
                    logger.warning(
                        "oauth %s: the email belongs to a user and is not verified on %s; "
                        "not linking",
                        self.id,
                        "both sides"
                        if not identity.email_verified and not owner.verified
                        else ("the provider" if not identity.email_verified else "the user"),
                    )
                    raise AccountNotLinked()
                email = identity.email if identity.email_verified else None
                return (*await repo.create_user(self.id, identity, email, now), True)
            except Conflict:
                if attempt == 1:
                    logger.warning("oauth %s: identity or email taken concurrently", self.id)
                    raise AccountNotLinked() from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- provider tokens -------------------------------------------------------------------------

    async def access_token(self, ctx: ProviderContext, user_id: str) -> str | None:
        """A valid provider access token of ``user_id`` (refreshed when it expires within a
        minute), or ``None`` when none is stored (or tokens are not kept for this provider).

        Raises:
            OAuthProviderError: the token expired and refreshing it failed.
            StoreUnavailable: the database failed.
        """
        if not self.config.store_provider_tokens:
            return None
        repo = self._repo(ctx)
        lock = self._token_locks.setdefault((user_id, self.id), asyncio.Lock())
        async with lock:
            stored = await repo.tokens(user_id, self.id)
            if stored is None:
                return None
            now = ctx.clock()
            if stored.expires_at is None or now < stored.expires_at - TOKEN_REFRESH_MARGIN:
                return stored.access_token
            if stored.refresh_token is None:
                raise self._provider_error("the provider access token expired; no refresh token")
            endpoints = await self._endpoints(ctx)
            fresh = await self._token_request(
                ctx,
                endpoints,
                {"grant_type": "refresh_token", "refresh_token": stored.refresh_token},
                "token refresh",
            )
            await repo.save_tokens(
                StoredTokens(
                    stored.account_id,
                    fresh.access_token,
                    fresh.refresh_token or stored.refresh_token,
                    fresh.expires_at,
                ),
                now,
            )
            return fresh.access_token


def _form_encode(value: str) -> str:
    return urlencode({"": value})[1:]


def _email(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return normalize_email(value)
    except InvalidEmail:
        return None


def _apple_name(user: Any) -> str | None:
    """Apple posts the name once, on the first sign-in, as JSON in the ``user`` field."""
    if not isinstance(user, str) or len(user) > _MAX_PARAM:
        return None
    try:
        data = json.loads(user)
    except ValueError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, dict):
        return None
    parts = [name.get("firstName"), name.get("lastName")]
    joined = " ".join(p for p in parts if isinstance(p, str) and p)
    return joined or None
