"""What :meth:`Auth.open <authbridge.Auth.open>` checks and loads before serving: the signing
keys (configured, or the development key kept in the database), the tables, the mail sender, and
the warnings a misconfigured deployment deserves."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from urllib.parse import urlsplit

from .config import AuthConfig
from .cookies import is_development_host
from .errors import ConfigError, StoreUnavailable
from .keys import KeySet, generate_private_key_pem
from .passwords import PasswordHasher
from .store import Store, redact_url
from .store.accounts import AccountRepository
from .store.dialect import is_sqlite
from .store.keys import KeyRepository

__all__ = [
    "check_imported_hashes",
    "check_mailer",
    "check_tables",
    "load_keys",
    "require_keys",
    "warn_about_plain_http",
]

logger = logging.getLogger("authbridge")


def require_keys(config: AuthConfig) -> None:
    """Fail unless keys are configured or the database is the embedded SQLite one.

    Raises:
        ConfigError: no ``AUTHBRIDGE_JWT_PRIVATE_KEYS`` with a server database.
    """
    if not config.jwt_private_keys and not is_sqlite(config.database_url):
        raise ConfigError(
            "AUTHBRIDGE_JWT_PRIVATE_KEYS is required with a server database "
            f"({redact_url(config.database_url)}); "
            "generate keys with `authbridge keys generate`"
        )


async def load_keys(config: AuthConfig, store: Store, now: datetime) -> KeySet:
    """The configured keys; without any (SQLite only), the development key kept in
    ``auth_keys``, generated on first use (logged: INFO on a development host, else WARNING).

    Raises:
        ConfigError: no usable keys.
        StoreUnavailable: the database failed.
    """
    if config.jwt_private_keys:
        return KeySet.from_texts(config.jwt_private_keys)
    require_keys(config)
    keys, created = await KeyRepository(store).load_or_create(
        lambda: generate_private_key_pem(config.jwt_algorithm), now
    )
    if created is not None:
        host = urlsplit(config.site_url).hostname or ""
        log = logger.info if is_development_host(host) else logger.warning
        log(
            "authbridge generated a development signing key (%s) and stored it in the "
            "database; set AUTHBRIDGE_JWT_PRIVATE_KEYS in production",
            created.kid,
        )
    return keys


async def check_tables(config: AuthConfig, store: Store) -> None:
    """Fail with the fix when the schema is missing; the embedded SQLite database is a
    development one, so a brand-new file simply gets its tables. A database that is down is
    let through (the revocation poll retries).

    Raises:
        ConfigError: some auth tables are missing.
    """
    try:
        missing = await store.missing_tables()
    except StoreUnavailable:
        return
    if not missing:
        return
    where = redact_url(config.database_url)
    if is_sqlite(config.database_url) and len(missing) == len(store.required_tables):
        await store.create_tables()
        logger.info("authbridge created its tables in the new SQLite database %s", where)
        return
    raise ConfigError(
        f"the auth tables are missing in {where} ({', '.join(missing)}): "
        "run `authbridge db upgrade` (or `authbridge db init`), "
        "or pass Auth(..., create_tables=True)"
    )


def check_mailer(config: AuthConfig, providers: Collection[str], mailer: object) -> None:
    """Fail when email sign-in or verification is on and nothing can send mail.

    Raises:
        ConfigError: no mail sender.
    """
    needs_mail = "email" in providers or config.email.verification != "off"
    if needs_mail and mailer is None:
        raise ConfigError(
            "email sign-in / verification needs AUTHBRIDGE_SMTP_URL with a server database "
            "(or AUTHBRIDGE_EMAIL_CONSOLE=true to log messages, development only)"
        )


async def check_imported_hashes(passwords: PasswordHasher, accounts: AccountRepository) -> None:
    """While imported scrypt hashes remain, every password check does their work too (see
    :mod:`authbridge.passwords`); once all have been rehashed, checks are argon2id only."""
    try:
        passwords.imported = await accounts.has_imported_secrets()
    except StoreUnavailable:
        passwords.imported = True  # unknown: the safe side costs a scrypt per check
        logger.error("authbridge could not check for imported password hashes; will retry")


def warn_about_plain_http(config: AuthConfig) -> None:
    """Warn when ``site_url`` is plain http on a host that is not a development one."""
    site = urlsplit(config.site_url)
    if site.scheme == "http" and not is_development_host(site.hostname or ""):
        logger.warning(
            "AUTHBRIDGE_SITE_URL is %s: authbridge marks cookies Secure on every host but "
            "localhost, and browsers do not send Secure cookies back over plain http, so "
            "nobody will stay signed in; serve the site over https (or use "
            "authbridge.testing in tests)",
            config.site_url,
        )
