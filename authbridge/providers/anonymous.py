"""Anonymous users (Convex Auth's ``Anonymous`` provider), enabled by ``AUTHBRIDGE_ANONYMOUS``.

``signIn("anonymous", {})`` creates a user with ``is_anonymous`` and no sign-in method, and starts
a normal session. Signing up or in with another method later, while that session is current,
upgrades the same user (see :meth:`authbridge.Auth.conclude`): the app's rows keyed by its id stay
its own. Anonymous users that never upgrade are deleted by :meth:`authbridge.Auth.cleanup` after
``anonymous_idle`` without an active session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParams
from .base import SignedIn

if TYPE_CHECKING:
    from .base import Outcome, ProviderContext, ProviderRoute, SignInRequest

__all__ = ["AnonymousProvider"]


class AnonymousProvider:
    """``{}`` → a new anonymous user and a session (the current one, if already anonymous)."""

    id = "anonymous"

    def routes(self) -> Sequence[ProviderRoute]:
        """No routes of its own."""
        return ()

    async def sign_in(
        self, ctx: ProviderContext, params: Mapping[str, Any], request: SignInRequest
    ) -> Outcome:
        """Create an anonymous user; a browser that is already anonymous keeps its user.

        Raises:
            InvalidParams: anonymous users are not enabled (``AUTHBRIDGE_ANONYMOUS``).
            TooManyAttempts: this client created too many users (the sign-up limit).
            StoreUnavailable: the database failed.
        """
        if not ctx.config.anonymous:
            raise InvalidParams("anonymous sign-in is not enabled")
        if request.user_id is not None and await ctx.users.is_anonymous(request.user_id):
            return SignedIn(request.user_id)
        async with ctx.limiter.attempt(keep=ctx.limiter.sign_ups(request)) as attempt:
            user_id = await ctx.users.create_anonymous(now=ctx.clock())
            attempt.succeed()
        return SignedIn(user_id, new_user=True)
