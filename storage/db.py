"""Engines and migrations: SQLite (WAL, busy timeout, immediate transactions) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 5000
_MIGRATION_LOCK = 7_320_451  # any constant, shared by every replica


def default_url(directory: str | Path = ".") -> str:
    return f"sqlite+aiosqlite:///{Path(directory, 'rollout-bot.db').resolve()}"


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so we can make them IMMEDIATE:
        # a writer then waits for the lock up front instead of failing when it upgrades.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        readonly = connection.get_execution_options().get("readonly", False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that write: on SQLite each transaction takes the write lock when it begins."""
    return async_sessionmaker(engine, expire_on_commit=False)


def reader(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that only read: on SQLite they see a snapshot and never wait for writers."""
    return async_sessionmaker(engine.execution_options(readonly=True), expire_on_commit=False)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration. Safe to run from several replicas at once."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")  # feature branches of the schema may each add a head


# What the database says when it cannot take a write now but may soon: another writer
# holds the lock past the busy timeout, or the disk is full. SQLite's words, then
# PostgreSQL's (SQLSTATE 53100 disk full, 55P03 lock not available, 40001/40P01).
_BUSY = ("database is locked", "database table is locked", "could not obtain lock",
         "deadlock detected", "could not serialize access", "lockNotAvailable")
_FULL = ("database or disk is full", "disk i/o error", "no space left on device",
         "could not extend file", "diskfull")


def unavailable(exc: BaseException) -> str | None:
    """"busy" or "full" when `exc` (or what caused it) is the database refusing a write
    for now, else None. Such a failure rolled its transaction back: nothing was written,
    and the same write may succeed in a moment."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        words = f"{type(current).__name__} {current}".lower()
        if any(w.lower() in words for w in _FULL):
            return "full"
        if any(w.lower() in words for w in _BUSY):
            return "busy"
        current = current.__cause__ or current.__context__
    return None


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
