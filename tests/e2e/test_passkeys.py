"""Passkeys in Chromium with a virtual authenticator (DevTools protocol ``WebAuthn`` domain),
against the notes demo on http://localhost:<port> (WebAuthn refuses IP addresses as RP ids)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, run_server

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(
        tmp_path_factory.mktemp("passkeys"), "shared", host="localhost", passkeys="true"
    ) as running:
        yield running


@pytest.fixture
def page(context: Any, server: Server) -> Any:
    page = context.new_page()
    page.goto(server.url + "/signin")
    return page


@pytest.fixture
def authenticator(context: Any, page: Any) -> dict[str, Any]:
    """A platform authenticator with resident keys and user verification, via CDP."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    made = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return {"cdp": cdp, "id": made["authenticatorId"]}


def run(page: Any, script: str, *args: Any) -> Any:
    """Evaluate an async function body in the page; returns ``{ok, value}`` or ``{error}``."""
    return page.evaluate(
        f"""async (args) => {{
            try {{ return {{ok: true, value: await (async () => {{ {script} }})()}}; }}
            catch (e) {{ return {{error: e.code || e.name, message: String(e)}}; }}
        }}""",
        list(args),
    )


def sign_up_and_register(page: Any, email: str) -> tuple[str, dict[str, Any]]:
    signed = run(
        page,
        "return await authbridge.signIn('password', "
        "{flow: 'signUp', email: args[0], password: args[1]});",
        email,
        PASSWORD,
    )
    assert signed.get("ok") and signed["value"]["signedIn"], signed
    registered = run(page, "return await authbridge.passkeys.register({name: 'Laptop'});")
    assert registered.get("ok"), registered
    return signed["value"]["userId"], registered["value"]


def sign_count(server: Server, passkey_id: str) -> int:
    database = Path(server.log).parent / "e2e.db"
    with sqlite3.connect(database) as conn:
        (count,) = conn.execute(
            "SELECT sign_count FROM auth_passkeys WHERE id = ?", (passkey_id,)
        ).fetchone()
    return int(count)


def test_register_then_sign_in_without_a_username_and_the_counter_grows(
    page: Any, authenticator: dict[str, Any], server: Server, email_factory: Any
) -> None:
    user_id, passkey = sign_up_and_register(page, email_factory("ada"))
    assert passkey["name"] == "Laptop"
    listed = run(page, "return await authbridge.passkeys.list();")
    assert [p["id"] for p in listed["value"]] == [passkey["id"]]
    before = sign_count(server, passkey["id"])
    assert run(page, "return await authbridge.signOut();").get("ok")
    first = run(page, "return await authbridge.signIn('passkey');")
    assert first.get("ok") and first["value"]["signedIn"] is True, first
    assert first["value"]["userId"] == user_id
    after_first = sign_count(server, passkey["id"])
    second = run(page, "return await authbridge.signIn('passkey');")
    assert second.get("ok"), second
    after_second = sign_count(server, passkey["id"])
    assert before < after_first < after_second
    state = run(page, "return authbridge.state;")
    assert state["value"]["isAuthenticated"] is True and state["value"]["userId"] == user_id


def test_an_assertion_without_user_verification_is_refused(
    page: Any, authenticator: dict[str, Any], email_factory: Any
) -> None:
    sign_up_and_register(page, email_factory("bob"))
    run(page, "return await authbridge.signOut();")
    authenticator["cdp"].send(
        "WebAuthn.setUserVerified",
        {"authenticatorId": authenticator["id"], "isUserVerified": False},
    )
    # Ask the authenticator not to verify (the server's options require it): the server must
    # notice the missing UV flag itself.
    refused = run(
        page,
        """
        const res = await fetch(authbridge.prefix + '/passkeys/signin/options',
          {method: 'POST', headers: {'content-type': 'application/json'}, body: '{}'});
        const data = await res.json();
        data.publicKey.userVerification = 'discouraged';
        const options = PublicKeyCredential.parseRequestOptionsFromJSON(data.publicKey);
        const credential = await navigator.credentials.get({publicKey: options});
        return await authbridge.signIn('passkey', {credential: credential.toJSON()});
        """,
    )
    assert refused.get("error") == "InvalidCredentials", refused
    # Through the client (which asks for verification) the browser refuses before the server.
    through_client = run(page, "return await authbridge.signIn('passkey');")
    assert "error" in through_client, through_client
    assert run(page, "return authbridge.state.isAuthenticated;")["value"] is False


def test_a_removed_passkey_no_longer_signs_in(
    page: Any, authenticator: dict[str, Any], email_factory: Any
) -> None:
    _, passkey = sign_up_and_register(page, email_factory("cy"))
    removed = run(page, "return await authbridge.passkeys.remove(args[0]);", passkey["id"])
    assert removed.get("ok"), removed
    assert run(page, "return await authbridge.passkeys.list();")["value"] == []
    run(page, "return await authbridge.signOut();")
    # The authenticator still holds the credential; the server no longer knows it.
    refused = run(page, "return await authbridge.signIn('passkey');")
    assert refused.get("error") == "InvalidCredentials", refused


def test_a_captured_assertion_cannot_be_replayed(
    page: Any, authenticator: dict[str, Any], email_factory: Any
) -> None:
    user_id, _ = sign_up_and_register(page, email_factory("dee"))
    run(page, "return await authbridge.signOut();")
    replayed = run(
        page,
        """
        const res = await fetch(authbridge.prefix + '/passkeys/signin/options',
          {method: 'POST', headers: {'content-type': 'application/json'}, body: '{}'});
        const data = await res.json();
        const options = PublicKeyCredential.parseRequestOptionsFromJSON(data.publicKey);
        const credential = (await navigator.credentials.get({publicKey: options})).toJSON();
        const first = await authbridge.signIn('passkey', {credential});
        await authbridge.signOut();
        try { await authbridge.signIn('passkey', {credential}); return {first, second: 'ok'}; }
        catch (e) { return {first, second: e.code}; }
        """,
    )
    assert replayed["value"]["first"]["userId"] == user_id
    assert replayed["value"]["second"] == "InvalidCredentials"
