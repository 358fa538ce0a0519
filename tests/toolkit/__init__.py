"""The test suites' toolkit: one copy of what every suite needs besides the code under test.

- :mod:`tests.toolkit.clock`: ``FakeClock``, the injectable clock every time window moves.
- :mod:`tests.toolkit.engines`: cheap hashing, the run's signing key, the ``auth_factory`` type.
- :mod:`tests.toolkit.databases`: SQLite URLs and throw-away PostgreSQL databases.
- :mod:`tests.toolkit.servers`: free ports, uvicorn in the test's event loop, uvicorn processes.
- :mod:`tests.toolkit.browser`: Debian's Chromium through Playwright.
- :mod:`tests.toolkit.clients`: in-process httpx clients and the JSON sign-up / sign-in calls.
- :mod:`tests.toolkit.sql`: the statements an engine sends, for "at most one query" checks.
- :mod:`tests.toolkit.passkeys`: a software passkey authenticator (registrations, assertions).

The shared fixtures (``clock``, ``db_url``, ``auth_factory``, ``client_factory``...) live in
``tests/conftest.py`` and are built from these. Apps' own tests use the public kit,
:mod:`authbridge.testing`, which this toolkit builds on.
"""
