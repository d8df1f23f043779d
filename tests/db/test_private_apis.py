"""The private APIs the service builds on keep the shape it uses, or these tests fail naming what changed.

service/db/pool.py subclasses SQLAlchemy's AsyncAdaptedQueuePool (it overrides `_do_get`, sets `_queue_class` and
takes connections from `_pool`) and its AsyncAdaptedQueue (it overrides `get` and `put_nowait` and calls
`get_nowait`); service/web/transaction.py finds the request's session with advanced-alchemy's private
`get_aa_scope_state`; service/system/serving.py wraps litestar-granian's private `_GranianSupervisor.forward`;
service/db/pooler.py overrides asyncpg's `Connection._introspect_types` and sets its `_server_caps`, and keeps
unnamed statements that asyncpg marks unprepared (their `_state.prepared`), checking their `_state.closed`.
pyproject.toml bounds the three packages below their next minor version; raising a bound means
running these first. (How the pool behaves with them is tested in test_pool.py.)
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import advanced_alchemy.extensions.litestar._utils as aa_utils
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool
from sqlalchemy.util import concurrency, queue

from service.core.settings import Settings
from service.db.config import sqlalchemy_config
from service.db.pool import FairQueue, ReadyFirstPool
from tests.client import TEST_SECRET, serve
from tests.database import connect
from tests.postgresql_only import ASYNCPG

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_both_packages_are_bounded_above() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for name in ("sqlalchemy", "advanced-alchemy", "litestar-granian"):
        (requirement,) = [spec for spec in dependencies if re.match(rf"{name}\b(?!-)", spec)]
        assert "<" in requirement, f"{requirement!r}: a release may change the private API the service uses"


def test_the_pool_checks_out_through_do_get_from_pool() -> None:
    for name in ("_do_get", "_do_return_conn", "_queue_class"):
        assert hasattr(AsyncAdaptedQueuePool, name), f"SQLAlchemy's AsyncAdaptedQueuePool has no `{name}` any more"
    assert list(inspect.signature(QueuePool._do_get).parameters) == ["self"], (
        f"QueuePool._do_get{inspect.signature(QueuePool._do_get)} is no longer `_do_get(self)`, which ReadyFirstPool "
        "overrides"
    )
    assert issubclass(AsyncAdaptedQueuePool._queue_class, queue.AsyncAdaptedQueue), (
        f"AsyncAdaptedQueuePool's queue is now {AsyncAdaptedQueuePool._queue_class!r}, not the AsyncAdaptedQueue "
        "that FairQueue extends"
    )
    pool = ReadyFirstPool(lambda: None, pool_size=3)  # nothing connects until a checkout
    assert isinstance(pool._pool, FairQueue), (
        "QueuePool.__init__ no longer builds `self._pool` from `_queue_class`: ReadyFirstPool's queue is "
        f"{type(pool._pool)!r}"
    )
    assert pool._pool.maxsize == 3, "QueuePool.__init__ no longer passes pool_size to `_queue_class` first"


def test_the_queue_methods_fair_queue_overrides_and_calls() -> None:
    expected = {
        "__init__": ["self", "maxsize", "use_lifo"],
        "get": ["self", "block", "timeout"],
        "get_nowait": ["self"],
        "put": ["self", "item", "block", "timeout"],
        "put_nowait": ["self", "item"],
    }
    for name, parameters in expected.items():
        method = getattr(queue.AsyncAdaptedQueue, name, None)
        assert method is not None, f"SQLAlchemy's AsyncAdaptedQueue has no `{name}` any more"
        assert list(inspect.signature(method).parameters) == parameters, (
            f"AsyncAdaptedQueue.{name}{inspect.signature(method)} is no longer ({', '.join(parameters)})"
        )
    assert callable(getattr(concurrency, "await_", None)), "sqlalchemy.util.concurrency has no `await_` any more"
    with_empty = FairQueue(1)
    try:
        with_empty.get_nowait()
    except queue.Empty:
        pass
    else:
        raise AssertionError("AsyncAdaptedQueue.get_nowait on an empty queue no longer raises sqlalchemy's Empty")


async def test_a_connection_given_back_reaches_put_nowait() -> None:
    # QueuePool gives a connection back with `_pool.put(record, False)`; FairQueue hands it to a waiter only if
    # that reaches its `put_nowait`.
    fair: FairQueue = FairQueue(1)
    waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fair._waiters.append((math.inf, waiter))
    entry: Any = object()
    fair.put(entry, False)
    assert waiter.done(), "AsyncAdaptedQueue.put(item, block=False) no longer goes through put_nowait"
    assert waiter.result() is entry
    assert fair.qsize() == 0


def test_get_aa_scope_state_keeps_its_signature() -> None:
    function = getattr(aa_utils, "get_aa_scope_state", None)
    assert function is not None, "advanced_alchemy.extensions.litestar._utils has no `get_aa_scope_state` any more"
    parameters = list(inspect.signature(function).parameters)
    assert parameters[:2] == ["scope", "key"], (
        f"get_aa_scope_state{inspect.signature(function)} no longer takes (scope, key, ...)"
    )


async def test_the_plugin_session_is_found_where_the_answer_starts(database_url: str) -> None:
    """CommitBeforeAnswer reads the request's session with get_aa_scope_state(scope, session_scope_key) as the
    answer's first message passes: it must be the session the handler was given."""
    config = sqlalchemy_config(Settings(secret_key=TEST_SECRET, database_url=database_url))
    key = getattr(config, "session_scope_key", None)
    assert isinstance(key, str), "advanced-alchemy's SQLAlchemyAsyncConfig has no `session_scope_key` any more"
    seen: dict[str, object] = {}

    class Peek(ASGIMiddleware):
        async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
            async def peek(message: Message) -> None:
                if message["type"] == "http.response.start":
                    seen["at the answer"] = aa_utils.get_aa_scope_state(scope, key)
                await send(message)

            await next_app(scope, receive, peek)

    @get("/")
    async def handler(db_session: NamedDependency[AsyncSession]) -> None:
        seen["handler"] = db_session

    app = Litestar([handler], plugins=[SQLAlchemyPlugin(config=config)], middleware=[Peek()])
    try:
        async with serve(app, bearer=None) as client:
            response = await client.get("/")
    finally:
        await config.get_engine().dispose()
    assert response.status_code == 200, response.text
    assert isinstance(seen.get("handler"), AsyncSession)
    assert seen.get("at the answer") is seen["handler"], (
        "get_aa_scope_state(scope, config.session_scope_key) no longer finds the plugin's session when the answer "
        f"starts (found {seen.get('at the answer')!r})"
    )


def test_granian_s_supervisor_forwards_a_signal_by_number() -> None:
    from litestar_granian.supervisor import _GranianSupervisor

    forward = getattr(_GranianSupervisor, "forward", None)
    assert forward is not None, "litestar-granian's _GranianSupervisor has no `forward` any more (serving.py wraps it)"
    assert list(inspect.signature(forward).parameters)[:2] == ["self", "signum"], (
        f"_GranianSupervisor.forward{inspect.signature(forward)} no longer takes (self, signum), as serving.py's "
        "wrapper calls it"
    )


def test_asyncpg_introspects_types_as_the_pooled_connection_expects() -> None:
    # service/db/pooler.py overrides `_introspect_types` and turns `_server_caps.jit` off around it, so that asyncpg
    # sends no session-level set_config('jit', ...); tests/db/test_pooler_guard.py sees the wire if that changes.
    import asyncpg
    from asyncpg.connection import ServerCapabilities

    introspect = getattr(asyncpg.Connection, "_introspect_types", None)
    assert introspect is not None, "asyncpg.Connection has no `_introspect_types` any more (pooler.py overrides it)"
    assert list(inspect.signature(introspect).parameters) == ["self", "typeoids", "timeout"]
    assert "self._server_caps.jit" in inspect.getsource(introspect), "asyncpg no longer decides JIT by _server_caps"
    assert "jit" in ServerCapabilities._fields, f"asyncpg's ServerCapabilities is now {ServerCapabilities._fields}"


@ASYNCPG
async def test_asyncpg_sends_a_kept_unnamed_statement_s_parse_with_each_bind(database_url: str) -> None:
    # service/db/pooler.py's UnnamedStatements keeps described unnamed statements: asyncpg, with its statement cache
    # off, marks them unprepared, so each run parses again in the same write as its Bind (one round trip, whatever
    # server connection a pooler gives); it replaces one whose `_state.closed` is set.
    connection = await connect(database_url, statement_cache_size=0)
    try:
        statement = await connection.prepare("SELECT $1::int + 1", name="")
        assert statement._state.name == ""
        assert statement._state.prepared is False, "asyncpg keeps unnamed statements prepared again"
        assert statement._state.closed is False
        assert [await statement.fetchval(n) for n in (1, 2)] == [2, 3]
    finally:
        await connection.close()
