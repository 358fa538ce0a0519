"""authbridge: authentication for any ASGI app.

Sessions with rotating refresh tokens, short-lived JWTs, password sign-in, an ASGI middleware,
server-side rendering helpers and a browser client with per-browser or per-tab sessions.

    from authbridge import Auth, AuthConfig, AuthMiddleware
    app = AuthMiddleware(app, Auth(AuthConfig.from_env()))
"""

from __future__ import annotations

from .claims import ClaimsHook
from .config import AuthConfig, PasswordConfig, RateLimitConfig
from .engine import Auth, SignInResult, User
from .errors import (
    AccountError,
    AccountExists,
    AuthError,
    ConfigError,
    IdentityInUse,
    InvalidCredentials,
    InvalidEmail,
    InvalidParams,
    InvalidPassword,
    InvalidRefreshToken,
    LastSignInMethod,
    MethodNotLinked,
    RecentAuthRequired,
    RefreshError,
    RefreshTokenReused,
    SignInError,
    StoreUnavailable,
    TokenError,
    TokenIssueError,
    TooManyAttempts,
)
from .events import AuthEvent
from .middleware import AuthMiddleware
from .providers import AnonymousProvider, PasswordProvider, Provider
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
    "AccountError",
    "AccountExists",
    "AnonymousProvider",
    "Auth",
    "AuthConfig",
    "AuthError",
    "AuthEvent",
    "AuthMiddleware",
    "AuthState",
    "AuthUser",
    "ClaimsHook",
    "ConfigError",
    "IdentityInUse",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidParams",
    "InvalidPassword",
    "InvalidRefreshToken",
    "LastSignInMethod",
    "MethodNotLinked",
    "PasswordConfig",
    "PasswordProvider",
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
