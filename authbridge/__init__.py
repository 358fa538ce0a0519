"""authbridge: authentication for any ASGI app.

Sessions with rotating refresh tokens, short-lived JWTs, password sign-in, an ASGI middleware,
server-side rendering helpers and a browser client with per-browser or per-tab sessions.

    from authbridge import Auth, AuthConfig, AuthMiddleware
    app = AuthMiddleware(app, Auth(AuthConfig.from_env()))
"""

from __future__ import annotations

from .claims import ClaimsHook
from .config import AuthConfig, EmailConfig, OAuthProviderConfig, PasswordConfig, RateLimitConfig
from .engine import Auth, SignInResult, User
from .errors import (
    AccountExists,
    AccountNotLinked,
    AuthError,
    ConfigError,
    EmailUnavailable,
    InvalidCode,
    InvalidCredentials,
    InvalidEmail,
    InvalidParams,
    InvalidPassword,
    InvalidRefreshToken,
    OAuthDenied,
    OAuthProviderError,
    OAuthStateInvalid,
    RecentAuthRequired,
    RefreshError,
    RefreshTokenReused,
    SignInError,
    StoreUnavailable,
    TokenError,
    TokenIssueError,
    TooManyAttempts,
)
from .mail import ConsoleSender, EmailSender, MailMessage, SmsSender, SmtpSender
from .middleware import AuthMiddleware
from .providers import PasswordProvider, Provider, Started
from .providers.email import EmailProvider
from .providers.oauth import OAuthProvider
from .providers.phone import PhoneProvider
from .recent import RecentAuth, recent_auth_response, require_recent_auth
from .sessions import SessionInfo, Tokens
from .state import (
    AuthState,
    AuthUser,
    get_auth_session,
    get_auth_session_id,
    get_auth_state,
    get_auth_user,
    get_auth_user_id,
)
from .tokens import AccessToken
from .trusted import RemoteToken, TrustedIssuer

__version__ = "0.1.0"

__all__ = [
    "AccessToken",
    "AccountExists",
    "AccountNotLinked",
    "Auth",
    "AuthConfig",
    "AuthError",
    "AuthMiddleware",
    "AuthState",
    "AuthUser",
    "ClaimsHook",
    "ConfigError",
    "ConsoleSender",
    "EmailConfig",
    "EmailProvider",
    "EmailSender",
    "EmailUnavailable",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidParams",
    "InvalidPassword",
    "InvalidRefreshToken",
    "MailMessage",
    "OAuthDenied",
    "OAuthProvider",
    "OAuthProviderConfig",
    "OAuthProviderError",
    "OAuthStateInvalid",
    "PasswordConfig",
    "PasswordProvider",
    "PhoneProvider",
    "Provider",
    "RateLimitConfig",
    "RecentAuth",
    "RecentAuthRequired",
    "RefreshError",
    "RefreshTokenReused",
    "RemoteToken",
    "SessionInfo",
    "SignInError",
    "SignInResult",
    "SmsSender",
    "SmtpSender",
    "Started",
    "StoreUnavailable",
    "TokenError",
    "TokenIssueError",
    "Tokens",
    "TooManyAttempts",
    "TrustedIssuer",
    "User",
    "__version__",
    "get_auth_session",
    "get_auth_session_id",
    "get_auth_state",
    "get_auth_user",
    "get_auth_user_id",
    "recent_auth_response",
    "require_recent_auth",
]
