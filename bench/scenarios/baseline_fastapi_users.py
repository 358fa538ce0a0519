"""FastAPI + fastapi-users baseline: JWT strategy, bearer transport, SQLAlchemy/aiosqlite users.

Imported lazily: fastapi-users is an optional bench dependency.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from bench.scenarios.keys import Algorithm, keypair


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = "bench-reset-secret"
    verification_token_secret = "bench-verify-secret"


@dataclass
class Built:
    app: FastAPI
    engine: AsyncEngine
    token: str


async def build(database_path: str, algorithm: Algorithm) -> Built:
    """Create the schema and one user in ``database_path``; return the app and a token."""
    pair = keypair(algorithm)
    engine = create_async_engine(f"sqlite+aiosqlite:///{database_path}")
    session_maker = async_sessionmaker(engine, expire_on_commit=False)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)

    async def get_async_session() -> AsyncIterator[AsyncSession]:
        async with session_maker() as session:
            yield session

    session_dependency = Depends(get_async_session)

    async def get_user_db(
        session: AsyncSession = session_dependency,
    ) -> AsyncIterator[SQLAlchemyUserDatabase[User, uuid.UUID]]:
        yield SQLAlchemyUserDatabase(session, User)

    user_db_dependency = Depends(get_user_db)

    async def get_user_manager(
        user_db: SQLAlchemyUserDatabase[User, uuid.UUID] = user_db_dependency,
    ) -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
        return JWTStrategy(
            secret=pair.private_pem,
            public_key=pair.public_pem,
            algorithm=algorithm,
            lifetime_seconds=3600,
        )

    backend = AuthenticationBackend(
        name="jwt",
        transport=BearerTransport(tokenUrl="auth/jwt/login"),
        get_strategy=get_jwt_strategy,
    )
    fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])
    current_user = Depends(fastapi_users.current_user(active=True))

    app = FastAPI()

    @app.get("/")
    async def index(user: User = current_user) -> PlainTextResponse:
        return PlainTextResponse(f"hello, {user.email}")

    async with session_maker() as session:
        manager = UserManager(SQLAlchemyUserDatabase(session, User))
        user = await manager.create(UserCreate(email="bench@example.com", password="bench-pw-1"))
        token = await get_jwt_strategy().write_token(user)
    return Built(app, engine, token)
