"""FastAPI: the public helpers work as plain dependencies (no 422 for a "request" query
parameter), and the ``authbridge.fastapi`` dependencies answer 401 with the bearer challenge."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Depends, FastAPI

from authbridge import Auth, AuthMiddleware, User, get_auth_session_id, get_auth_user
from authbridge import get_auth_user_id as user_id_of
from authbridge.fastapi import CurrentSession, CurrentUserId, OptionalUser
from tests.toolkit.clients import ClientFactory, sign_up

from .conftest import forge


def app_for(auth: Auth) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AuthMiddleware, auth=auth)

    @app.get("/helpers")
    async def helpers(
        user_id: str | None = Depends(user_id_of),
        session_id: str | None = Depends(get_auth_session_id),
        user: User | None = Depends(get_auth_user),
    ) -> dict[str, Any]:
        return {"userId": user_id, "sessionId": session_id, "email": user.email if user else None}

    @app.get("/required")
    async def required(user_id: CurrentUserId, session: CurrentSession) -> dict[str, Any]:
        return {"userId": user_id, "sessionId": session.session_id}

    @app.get("/optional")
    async def optional(user: OptionalUser) -> dict[str, Any]:
        return {"email": user.email if user else None}

    return app


async def test_the_public_helpers_are_fastapi_dependencies(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(app_for(auth))
    assert (await client.get("/helpers")).json() == {
        "userId": None,
        "sessionId": None,
        "email": None,
    }
    body = await sign_up(client, "dep@example.com")
    assert (await client.get("/helpers")).json() == {
        "userId": body["userId"],
        "sessionId": body["sessionId"],
        "email": "dep@example.com",
    }


async def test_required_dependencies_answer_401_with_the_bearer_challenge(
    auth: Auth, client_factory: ClientFactory
) -> None:
    client = client_factory(app_for(auth))
    anonymous = await client.get("/required")
    assert (anonymous.status_code, anonymous.json()) == (401, {"detail": "Unauthenticated"})
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="authbridge"'
    expired = forge(auth, claims={"exp": int(auth.clock().timestamp()) - 10})
    rejected = await client.get("/required", headers={"authorization": f"Bearer {expired}"})
    assert rejected.status_code == 401
    assert 'error="invalid_token"' in rejected.headers["www-authenticate"]
    assert (await client.get("/optional")).json() == {"email": None}
    body = await sign_up(client, "req@example.com")
    assert (await client.get("/required")).json() == {
        "userId": body["userId"],
        "sessionId": body["sessionId"],
    }
    assert (await client.get("/optional")).json() == {"email": "req@example.com"}


async def test_a_bearer_token_from_the_docs_authorize_button_is_enough(
    auth: Auth, client_factory: ClientFactory
) -> None:
    app = app_for(auth)
    browser = client_factory(app)
    body = await sign_up(browser, "docs@example.com")
    token = (await browser.post("/api/auth/token")).json()["token"]
    api = client_factory(app, headers={"authorization": f"Bearer {token}"})
    assert (await api.get("/required")).json()["userId"] == body["userId"]
    schema = (await api.get("/openapi.json")).json()
    assert schema["paths"]["/required"]["get"]["security"] == [{"bearer": []}]
    assert isinstance(api, httpx.AsyncClient)
