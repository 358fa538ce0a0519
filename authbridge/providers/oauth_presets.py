"""Endpoints and profile rules of the OAuth presets (DESIGN §17.3).

Every endpoint can be overridden per provider (``AUTHBRIDGE_OAUTH_<ID>_AUTHORIZATION_URL``,
``_TOKEN_URL``, ``_USERINFO_URL``, ``_JWKS_URL``; ``_ISSUER`` switches a preset to discovery):
self-hosted GitLab, a Microsoft single tenant, tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PRESETS", "Preset", "microsoft_issuer_ok"]

TokenAuth = Literal["basic", "post"]
"""How the client authenticates at the token endpoint: HTTP Basic or form fields."""


def microsoft_issuer_ok(claims: Mapping[str, Any]) -> bool:
    """Multi-tenant Entra ID: ``iss`` must be the issuer of the tenant the token names (``tid``),
    as the ``common`` endpoint's metadata says with its ``{tenantid}`` template."""
    tid = claims.get("tid")
    if not isinstance(tid, str) or not tid or "/" in tid:
        return False
    return claims.get("iss") == f"https://login.microsoftonline.com/{tid}/v2.0"


@dataclass(frozen=True, slots=True)
class Preset:
    """A well-known provider."""

    name: str
    """The button label."""
    scopes: tuple[str, ...]
    """Scopes asked for by default."""
    authorization_url: str
    token_url: str
    userinfo_url: str | None
    jwks_url: str | None
    issuer: str | None
    """The ``iss`` of its ID tokens and authorization responses (``None``: plain OAuth 2, or
    checked by ``issuer_check``)."""
    oidc: bool = True
    """Sends ID tokens (plain OAuth 2 providers take the profile from their API)."""
    issuer_check: Callable[[Mapping[str, Any]], bool] | None = None
    """A predicate over ID-token claims instead of one fixed ``issuer`` (multi-tenant)."""
    response_mode: Literal["query", "form_post"] = "query"
    token_auth: TokenAuth = "basic"
    profile: Literal["oidc", "github", "discord"] = "oidc"
    """How the profile is read from the userinfo answer."""
    email_verified_by_default: bool = False
    """Whether an ``email`` claim without ``email_verified`` counts as verified."""
    authorize_params: tuple[tuple[str, str], ...] = ()
    """Extra authorization request parameters."""


PRESETS: dict[str, Preset] = {
    "github": Preset(
        name="GitHub",
        scopes=("read:user", "user:email"),
        authorization_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",
        userinfo_url="https://api.github.com/user",
        jwks_url=None,
        issuer=None,
        oidc=False,
        token_auth="post",
        profile="github",
    ),
    "google": Preset(
        name="Google",
        scopes=("openid", "email", "profile"),
        authorization_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
        jwks_url="https://www.googleapis.com/oauth2/v3/certs",
        issuer="https://accounts.google.com",
        token_auth="post",
    ),
    "microsoft": Preset(
        name="Microsoft",
        scopes=("openid", "email", "profile"),
        authorization_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
        userinfo_url="https://graph.microsoft.com/oidc/userinfo",
        jwks_url="https://login.microsoftonline.com/common/discovery/v2.0/keys",
        issuer=None,
        issuer_check=microsoft_issuer_ok,
        token_auth="post",
    ),
    "gitlab": Preset(
        name="GitLab",
        scopes=("openid", "email", "profile"),
        authorization_url="https://gitlab.com/oauth/authorize",
        token_url="https://gitlab.com/oauth/token",
        userinfo_url="https://gitlab.com/oauth/userinfo",
        jwks_url="https://gitlab.com/oauth/discovery/keys",
        issuer="https://gitlab.com",
        token_auth="post",
    ),
    "discord": Preset(
        name="Discord",
        scopes=("identify", "email"),
        authorization_url="https://discord.com/oauth2/authorize",
        token_url="https://discord.com/api/oauth2/token",
        userinfo_url="https://discord.com/api/users/@me",
        jwks_url=None,
        issuer=None,
        oidc=False,
        token_auth="post",
        profile="discord",
    ),
    "apple": Preset(
        name="Apple",
        scopes=("name", "email"),
        authorization_url="https://appleid.apple.com/auth/authorize",
        token_url="https://appleid.apple.com/auth/token",
        userinfo_url=None,
        jwks_url="https://appleid.apple.com/auth/keys",
        issuer="https://appleid.apple.com",
        response_mode="form_post",
        token_auth="post",
        # Apple relays or verifies every address it sends (private relay addresses included).
        email_verified_by_default=True,
    ),
}
"""The presets by provider id."""
