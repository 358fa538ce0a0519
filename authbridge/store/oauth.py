"""OAuth's tables: flows in progress (``auth_verifiers``), identities (``auth_accounts`` rows
created by OAuth sign-in, and the users they create or link to) and provider tokens
(``auth_provider_tokens``).

Provider tokens are encrypted at rest: AES-256-GCM with a key derived (HKDF-SHA256) from the JWT
signing keys' private material, which never lives in these tables, and bound to the account id;
the newest key seals, every configured key opens (a token sealed by a removed key reads as
missing, and the user signs in again).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import Conflict
from .tables import new_id

if TYPE_CHECKING:
    from . import Store

__all__ = [
    "EmailOwner",
    "Flow",
    "Identity",
    "OAuthRepository",
    "StoredTokens",
    "TokenSealer",
]


@dataclass(frozen=True, slots=True)
class Flow:
    """An OAuth flow in progress (one ``auth_verifiers`` row), keyed by the state's hash."""

    provider: str
    browser_hash: str
    """sha256 of the secret in the browser's flow cookie."""
    code_verifier: str
    nonce: str | None
    redirect_to: str | None
    tab: str | None
    """``per_tab``: the tab that started the flow (the session lands in its slot)."""
    link_user_id: str | None
    """Set when a signed-in user links this provider to their account."""
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says the user is."""

    subject: str
    """The provider's stable user id (``sub``; GitHub's numeric id)."""
    email: str | None
    email_verified: bool
    name: str | None
    image: str | None


@dataclass(frozen=True, slots=True)
class EmailOwner:
    """The user who has an email address, and whether they verified it."""

    user_id: str
    verified: bool


@dataclass(frozen=True, slots=True)
class StoredTokens:
    """A provider's tokens for one account, as stored (sealed by the caller)."""

    account_id: str
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None


_INFO = b"authbridge/provider-tokens/v1"
_NONCE = 12


class TokenSealer:
    """Seals provider tokens with keys derived from secret key material (the last one seals)."""

    def __init__(self, materials: Sequence[bytes]) -> None:
        self._keys = [
            AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=_INFO).derive(m)) for m in materials
        ]

    def seal(self, account_id: str, token: str) -> str:
        """``token`` encrypted and bound to ``account_id``.

        Raises:
            RuntimeError: no key material.
        """
        if not self._keys:
            raise RuntimeError("no key material to seal provider tokens with")
        nonce = os.urandom(_NONCE)
        sealed = self._keys[-1].encrypt(nonce, token.encode("utf-8"), account_id.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, account_id: str, sealed: str) -> str | None:
        """The token, or ``None`` when no key opens it (or it was tampered with)."""
        try:
            raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        nonce, body = raw[:_NONCE], raw[_NONCE:]
        for key in reversed(self._keys):
            try:
                return key.decrypt(nonce, body, account_id.encode()).decode("utf-8")
            except (InvalidTag, ValueError):
                continue
        return None


class OAuthRepository:
    """Queries for OAuth sign-in.

    Args:
        store: the database.
        key_material: returns the secret material provider tokens are sealed with (the private
            signing keys' bytes, oldest first); called when tokens are first read or written.
    """

    def __init__(self, store: Store, key_material: Callable[[], Sequence[bytes]]) -> None:
        self._store = store
        self._key_material = key_material
        self._sealer: TokenSealer | None = None
        self._sealer_for: tuple[bytes, ...] = ()

    def _seal(self) -> TokenSealer:
        materials = tuple(self._key_material())
        if self._sealer is None or materials != self._sealer_for:
            self._sealer, self._sealer_for = TokenSealer(materials), materials
        return self._sealer

    # -- flows ---------------------------------------------------------------------------------

    async def save_flow(self, state_hash: str, flow: Flow, now: datetime) -> None:
        """Record a new flow (and drop expired ones, so the table stays small).

        Raises:
            StoreUnavailable: the database failed.
        """
        v = self._store.tables.verifiers
        async with self._store.transaction() as conn:
            await conn.execute(delete(v).where(v.c.expires_at < now))
            await conn.execute(
                insert(v).values(
                    id=state_hash,
                    created_at=now,
                    provider=flow.provider,
                    browser_hash=flow.browser_hash,
                    code_verifier=flow.code_verifier,
                    nonce=flow.nonce,
                    redirect_to=flow.redirect_to,
                    tab=flow.tab,
                    link_user_id=flow.link_user_id,
                    expires_at=flow.expires_at,
                )
            )

    async def take_flow(self, state_hash: str) -> Flow | None:
        """Remove and return the flow of this state: a state works once, even when two
        callbacks race (only one of them gets the row).

        Raises:
            StoreUnavailable: the database failed.
        """
        v = self._store.tables.verifiers
        async with self._store.transaction() as conn:
            row = (
                await conn.execute(
                    delete(v)
                    .where(v.c.id == state_hash)
                    .returning(
                        v.c.provider,
                        v.c.browser_hash,
                        v.c.code_verifier,
                        v.c.nonce,
                        v.c.redirect_to,
                        v.c.tab,
                        v.c.link_user_id,
                        v.c.expires_at,
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return Flow(
            str(row.provider),
            str(row.browser_hash),
            str(row.code_verifier),
            row.nonce,
            row.redirect_to,
            row.tab,
            row.link_user_id,
            row.expires_at,
        )

    # -- accounts --------------------------------------------------------------------------------

    async def account(self, provider: str, subject: str) -> tuple[str, str] | None:
        """``(account_id, user_id)`` of this provider identity.

        Raises:
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(a.c.id, a.c.user_id).where(
                        (a.c.provider == provider) & (a.c.provider_account_id == subject)
                    )
                )
            ).one_or_none()
        return None if row is None else (str(row.id), str(row.user_id))

    async def email_owner(self, email: str) -> EmailOwner | None:
        """The user with this (normalised) email.

        Raises:
            StoreUnavailable: the database failed.
        """
        u = self._store.tables.users
        async with self._store.read() as conn:
            row = (
                await conn.execute(select(u.c.id, u.c.email_verified_at).where(u.c.email == email))
            ).one_or_none()
        return None if row is None else EmailOwner(str(row.id), row.email_verified_at is not None)

    async def create_user(
        self, provider: str, identity: Identity, email: str | None, now: datetime
    ) -> tuple[str, str]:
        """Create a user from a provider identity, with its account. Returns
        ``(account_id, user_id)``.

        Raises:
            Conflict: the identity or the email was taken meanwhile (a race).
            StoreUnavailable: the database failed.
        """
        t = self._store.tables
        user_id, account_id = new_id(), new_id()
        try:
            async with self._store.transaction() as conn:
                await conn.execute(
                    insert(t.users).values(
                        id=user_id,
                        created_at=now,
                        email=email,
                        email_verified_at=now
                        if email is not None and identity.email_verified
                        else None,
                        name=(identity.name or None) and identity.name[:200],
                        image=identity.image,
                        is_anonymous=False,
                    )
                )
                await conn.execute(
                    insert(t.accounts).values(
                        id=account_id,
                        created_at=now,
                        user_id=user_id,
                        provider=provider,
                        provider_account_id=identity.subject,
                    )
                )
        except IntegrityError as exc:
            raise Conflict("identity or email taken") from exc
        return account_id, user_id

    async def link(self, user_id: str, provider: str, subject: str, now: datetime) -> str:
        """Add a provider identity to an existing user. Returns the account id.

        Raises:
            Conflict: the identity was linked meanwhile (a race).
            StoreUnavailable: the database failed.
        """
        a = self._store.tables.accounts
        account_id = new_id()
        try:
            async with self._store.transaction() as conn:
                await conn.execute(
                    insert(a).values(
                        id=account_id,
                        created_at=now,
                        user_id=user_id,
                        provider=provider,
                        provider_account_id=subject,
                    )
                )
        except IntegrityError as exc:
            raise Conflict("identity linked meanwhile") from exc
        return account_id

    # -- provider tokens ---------------------------------------------------------------------------

    async def save_tokens(self, tokens: StoredTokens, now: datetime) -> None:
        """Insert or replace an account's provider tokens (sealed here).

        Raises:
            StoreUnavailable: the database failed.
        """
        p = self._store.tables.provider_tokens
        sealer, account = self._seal(), tokens.account_id
        values = {
            "access_token": sealer.seal(account, tokens.access_token),
            "refresh_token": (
                None if tokens.refresh_token is None else sealer.seal(account, tokens.refresh_token)
            ),
            "expires_at": tokens.expires_at,
            "updated_at": now,
        }
        async with self._store.transaction() as conn:
            done = await conn.execute(
                update(p).where(p.c.account_id == tokens.account_id).values(**values)
            )
            if done.rowcount == 0:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(p).values(account_id=tokens.account_id, created_at=now, **values)
                        )
                except IntegrityError:  # inserted meanwhile: ours is as fresh
                    await conn.execute(
                        update(p).where(p.c.account_id == tokens.account_id).values(**values)
                    )

    async def tokens(self, user_id: str, provider: str) -> StoredTokens | None:
        """The stored tokens of the user's account at ``provider``.

        Raises:
            StoreUnavailable: the database failed.
        """
        t = self._store.tables
        a, p = t.accounts, t.provider_tokens
        async with self._store.read() as conn:
            row = (
                await conn.execute(
                    select(p.c.account_id, p.c.access_token, p.c.refresh_token, p.c.expires_at)
                    .join(a, a.c.id == p.c.account_id)
                    .where((a.c.user_id == user_id) & (a.c.provider == provider))
                    .limit(1)
                )
            ).one_or_none()
        if row is None:
            return None
        sealer, account = self._seal(), str(row.account_id)
        access = sealer.open(account, str(row.access_token))
        if access is None:
            return None
        refresh = None if row.refresh_token is None else sealer.open(account, row.refresh_token)
        return StoredTokens(account, access, refresh, row.expires_at)
