"""Exceptions raised by authbridge.

Every exception carries a stable string ``code`` (what endpoints put in ``{"error": code}``) and an
HTTP ``status`` suggestion. Codes never change meaning; prose messages may.

::

    AuthError
    ├── ConfigError                 invalid configuration (names the setting / variable)
    ├── StoreUnavailable            transient database failure (503, never signs anyone out)
    ├── EmailUnavailable            a code could not be delivered (503; no code was kept)
    ├── TokenError                  an access token was rejected (``reason`` says why)
    ├── TokenIssueError             a token could not be issued (reserved claim, too large)
    ├── RecentAuthRequired          the action needs a recent sign-in (step-up)
    ├── Unauthenticated             the action needs a signed-in user
    ├── RefreshError                a refresh token was rejected
    │   ├── InvalidRefreshToken     unknown, malformed, wrong secret, or expired
    │   └── RefreshTokenReused      reuse after the window: the session was revoked
    ├── AccountError                an account action was refused
    │   ├── LastSignInMethod        unlinking would leave the user no way to sign in
    │   ├── MethodNotLinked         the user has no such sign-in method
    │   └── IdentityInUse           the identity to link belongs to another user
    └── SignInError                 a sign-in / sign-up attempt failed
        ├── InvalidCredentials      unknown account or wrong password (indistinguishable)
        ├── TooManyAttempts         a rate limit is exhausted (``retry_after`` seconds)
        ├── AccountExists           sign-up for an email that already has an account
        ├── InvalidPassword         the password breaks the policy
        ├── InvalidEmail            the email is not a plausible address
        ├── InvalidCode             a one-time code or link is wrong, used or expired
        ├── InvalidParams           the request is malformed (unknown provider / flow, ...)
        ├── OAuthDenied             the user refused at the OAuth provider
        ├── OAuthStateInvalid       OAuth state missing, mismatched, used or expired
        ├── OAuthProviderError      the OAuth provider failed or answered something invalid
        └── AccountNotLinked        the identity's email belongs to a user it cannot be linked to
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "AccountError",
    "AccountExists",
    "AccountNotLinked",
    "AuthError",
    "ConfigError",
    "EmailUnavailable",
    "IdentityInUse",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidParams",
    "InvalidPassword",
    "InvalidRefreshToken",
    "LastSignInMethod",
    "MethodNotLinked",
    "OAuthDenied",
    "OAuthProviderError",
    "OAuthStateInvalid",
    "RecentAuthRequired",
    "RefreshError",
    "RefreshTokenReused",
    "SignInError",
    "StoreUnavailable",
    "TokenError",
    "TokenIssueError",
    "TooManyAttempts",
    "Unauthenticated",
]


class AuthError(Exception):
    """Base class of every authbridge error.

    Attributes:
        code: stable machine-readable code, e.g. ``"InvalidCredentials"``.
        status: the HTTP status an endpoint answers with.
    """

    code: str = "AuthError"
    status: int = 400

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message or self.code)


class ConfigError(AuthError, ValueError):
    """The configuration is invalid; the message names the setting or environment variable."""

    code = "ConfigError"
    status = 500


class StoreUnavailable(AuthError):
    """The database failed or timed out; the operation may succeed if retried."""

    code = "StoreUnavailable"
    status = 503


class EmailUnavailable(AuthError):
    """A message (email or SMS) with a one-time code could not be handed to the mail system
    (down, too slow, or it refused the recipient). No code from the attempt is usable."""

    code = "EmailUnavailable"
    status = 503


class TokenError(AuthError):
    """An access token was rejected.

    Attributes:
        reason: one of ``"malformed"``, ``"invalid_signature"``, ``"unknown_key"``,
            ``"invalid_algorithm"``, ``"invalid_issuer"``, ``"invalid_audience"``,
            ``"invalid_claims"``, ``"expired"``, ``"not_yet_valid"``, ``"revoked"``.
    """

    code = "InvalidToken"
    status = 401

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or reason)


class TokenIssueError(AuthError):
    """A token could not be issued. ``code`` says why: ``"ReservedClaim"`` (a custom claim tried
    to override ``sub``, ``iss``, ``aud``, ``iat``, ``exp``, ``nbf`` or ``jti``) or
    ``"TokenTooLarge"`` (the token would not fit in a cookie)."""

    code = "TokenIssueError"
    status = 500


class RecentAuthRequired(AuthError):
    """The action needs the user to have authenticated recently (or at all): sign in again.

    Attributes:
        max_age: how recent the sign-in must be.
    """

    code = "RecentAuthRequired"
    status = 401

    def __init__(self, max_age: timedelta, message: str | None = None) -> None:
        self.max_age = max_age
        super().__init__(message)


class Unauthenticated(AuthError):
    """The action needs a signed-in user."""

    code = "Unauthenticated"
    status = 401


class RefreshError(AuthError):
    """A refresh token was rejected."""

    code = "InvalidRefreshToken"
    status = 401


class InvalidRefreshToken(RefreshError):
    """The refresh token is unknown, malformed, has the wrong secret, or has expired."""

    code = "InvalidRefreshToken"


class RefreshTokenReused(RefreshError):
    """A used refresh token was presented after the reuse window; its session was revoked."""

    code = "RefreshTokenReused"


class AccountError(AuthError):
    """An account management action (``{prefix}/account/...``) was refused."""

    code = "AccountError"


class LastSignInMethod(AccountError):
    """Unlinking this method would leave the user without any way to sign in."""

    code = "LastSignInMethod"
    status = 409


class MethodNotLinked(AccountError):
    """The user has no sign-in method of this provider (or no password to change)."""

    code = "MethodNotLinked"
    status = 404


class IdentityInUse(AccountError):
    """The identity to link already belongs to another user."""

    code = "IdentityInUse"
    status = 409


class SignInError(AuthError):
    """A sign-in or sign-up attempt failed."""

    code = "SignInError"


class InvalidCredentials(SignInError):
    """Unknown account or wrong password; the two are deliberately indistinguishable."""

    code = "InvalidCredentials"
    status = 401


class TooManyAttempts(SignInError):
    """Too many failed attempts for this account or client.

    Attributes:
        retry_after: seconds until one more attempt is allowed.
    """

    code = "TooManyAttempts"
    status = 429

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class AccountExists(SignInError):
    """Sign-up was attempted for an email that already has an account."""

    code = "AccountExists"
    status = 409


class InvalidPassword(SignInError):
    """The password does not meet the policy (length, size)."""

    code = "InvalidPassword"


class InvalidEmail(SignInError):
    """The email address is not plausible."""

    code = "InvalidEmail"


class InvalidParams(SignInError):
    """The sign-in request is malformed: unknown provider or flow, missing or mistyped fields."""

    code = "InvalidParams"


class OAuthDenied(SignInError):
    """The user refused (or cancelled) at the OAuth provider."""

    code = "OAuthDenied"
    status = 403


class OAuthStateInvalid(SignInError):
    """The OAuth callback's ``state`` is missing, does not match this browser, was used already,
    or its flow expired."""

    code = "OAuthStateInvalid"


class OAuthProviderError(SignInError):
    """The OAuth provider is unreachable or slow, or answered something invalid (an error, a
    bad token response, an ID token that fails a check, a mismatched ``iss``)."""

    code = "OAuthProviderError"
    status = 502


class AccountNotLinked(SignInError):
    """The provider's identity carries the email of an existing user, and linking is not safe
    (the provider or the user has not verified it)."""

    code = "AccountNotLinked"
    status = 409


class InvalidCode(SignInError):
    """A one-time code or magic link is wrong, already used, replaced by a newer one, or expired
    (indistinguishable, like :class:`InvalidCredentials`)."""

    code = "InvalidCode"
    status = 400
