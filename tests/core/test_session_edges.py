"""Session revocation and rotation at their edges: forged refresh tokens end no session, an
empty revocation is a no-op, and a retry within the reuse window after the signing keys were
replaced (the old key dropped) is refused instead of branching the session."""

from __future__ import annotations

import pytest

from authbridge import Auth, InvalidRefreshToken
from authbridge.tokens import generate_private_key_pem
from tests.toolkit.clock import FakeClock
from tests.toolkit.engines import AuthFactory

PASSWORD = "a long enough password"


async def test_forged_refresh_tokens_and_empty_lists_end_no_session(auth: Auth) -> None:
    signed = await auth.sign_up_with_password("keep@example.com", PASSWORD)
    token_id = signed.tokens.refresh_token.split(".")[0]
    assert await auth.sessions.revoke([]) == 0
    forged = ["garbage", "a.b", f"{token_id}.not-the-secret", ""]
    assert await auth.sessions.revoke_by_refresh_tokens(forged) == 0
    assert await auth.sessions.revoke_by_refresh_tokens([]) == 0
    assert await auth.get_session(signed.session_id) is not None


async def test_a_retry_after_the_signing_keys_were_replaced_is_refused(
    auth: Auth, auth_factory: AuthFactory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    signed = await auth.sign_up_with_password("retry@example.com", PASSWORD)
    first = signed.tokens.refresh_token
    rotated = await auth.refresh(first)
    # Within the reuse window the same instance hands the same child back (a retried request).
    assert (await auth.refresh(first)).refresh_token == rotated.refresh_token
    # Another instance whose only key is new cannot unseal that child: refuse, do not branch.
    replaced = await auth_factory(jwt_private_keys=(generate_private_key_pem("ES256"),))
    clock.advance(2)
    with pytest.raises(InvalidRefreshToken):
        await replaced.refresh(first)
    assert "its child cannot be recovered" in caplog.text
    # The rotated token still works (and the session was not revoked as a replay).
    assert (await replaced.refresh(rotated.refresh_token)).session_id == signed.session_id
