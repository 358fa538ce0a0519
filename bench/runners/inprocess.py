"""In-process runner: ASGI apps called directly, in interleaved rounds (report table [1]).

Each scenario's ASGI app is called directly (no server, no sockets): the harness builds an
HTTP scope, hands the app a ``receive`` that yields one ``http.request`` message and a ``send``
that only records the status, and runs many requests back to back in one event loop.

Measurements are taken in *interleaved rounds*: round 1 runs every scenario once, then round 2
runs every scenario again (in a rotated order), and so on.  Machine noise (frequency scaling,
other processes, GC pressure) therefore hits all scenarios alike, and the per-round figures give
an honest spread.  For each scenario the table shows the median and the min-max of the per-round
cost in microseconds per request, plus the ratio of medians against a baseline measured in the
same run (``bench.report.inprocess_table``).

A scenario (listed in ``bench/scenarios/``)::

    async def my_factory() -> tuple[ASGIApp, ScopeFactory]:
        app = build_my_app()
        return app, http_scope("/", bearer=mint_token())

    Scenario("my-scenario", my_factory)

The scope factory is called once per request, so it can hand out a fresh header every time
(e.g. a new anonymous visitor, a freshly rotated refresh cookie).  A factory that needs cleanup
(temporary database, engine) or wants to see every response (to chain rotating cookies) returns
a :class:`Prepared` instead of a plain tuple.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bench.report import MICRO, one_line

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ScopeFactory = Callable[[], Scope]
Closer = Callable[[], Awaitable[None]]
ResponseObserver = Callable[[int, Sequence[tuple[bytes, bytes]]], None]


class Prepared(NamedTuple):
    """What a scenario factory may return when a bare ``(app, scope_factory)`` is not enough."""

    app: ASGIApp
    make_scope: ScopeFactory
    aclose: Closer | None = None
    """Awaited once after the last round (dispose engines, delete temporary files)."""
    observe: ResponseObserver | None = None
    """Called after every request with the response status and headers."""


Factory = Callable[[], Awaitable[tuple[ASGIApp, ScopeFactory] | Prepared]]


class ScenarioUnavailable(Exception):
    """Raised by a factory when its scenario cannot run here (missing optional dependency...)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    factory: Factory
    expect_status: int = 200
    """Every measured response must have this status; anything else counts as an error."""
    lifespan: bool = True
    """Run the ASGI lifespan protocol around the measurement (tolerant, like uvicorn 'auto')."""
    description: str = ""
    expect_in_body: bytes | None = None
    """Checked once before measuring: the first response body must contain these bytes."""


@dataclass(frozen=True)
class Settings:
    rounds: int = 9
    round_seconds: float = 0.2
    """Target wall time of one scenario in one round; sets the number of requests per round."""
    min_requests: int = 20
    max_requests: int = 20_000
    warmup_seconds: float = 0.15
    warmup_max_requests: int = 2_000

    @classmethod
    def quick(cls) -> Settings:
        return cls(rounds=3, round_seconds=0.06, warmup_seconds=0.05, warmup_max_requests=500)


@dataclass
class Result:
    name: str
    description: str = ""
    requests_per_round: int = 0
    per_round_us: list[float] = field(default_factory=list)
    per_round_cpu_us: list[float] = field(default_factory=list)
    """Process CPU time (all threads) per request: insensitive to time spent descheduled."""
    errors: int = 0
    skipped: str | None = None

    @property
    def median_us(self) -> float:
        return statistics.median(self.per_round_us) if self.per_round_us else float("nan")

    @property
    def median_cpu_us(self) -> float:
        return statistics.median(self.per_round_cpu_us) if self.per_round_cpu_us else float("nan")


# --------------------------------------------------------------------------------------------
# Scope / receive / send plumbing


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    query_string: str = "",
    headers: Iterable[tuple[str, str]] = (),
    cookies: Iterable[tuple[str, str]] = (),
    bearer: str | None = None,
    host: str = "testserver",
    scheme: str = "http",
) -> ScopeFactory:
    """Return a factory producing fresh uvicorn-like HTTP scopes for one fixed request."""
    raw_headers: list[tuple[bytes, bytes]] = [(b"host", host.encode("latin-1"))]
    raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
    ]
    cookie_pairs = [f"{name}={value}" for name, value in cookies]
    if cookie_pairs:
        raw_headers.append((b"cookie", "; ".join(cookie_pairs).encode("latin-1")))
    if bearer is not None:
        raw_headers.append((b"authorization", f"Bearer {bearer}".encode("latin-1")))
    template: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": scheme,
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("latin-1"),
        "query_string": query_string.encode("latin-1"),
        "headers": raw_headers,
    }

    def make_scope() -> Scope:
        scope = template.copy()
        scope["headers"] = list(raw_headers)
        return scope

    return make_scope


class Exchange:
    """One request/response pair: ``receive`` and ``send`` callables handed to the app."""

    __slots__ = ("body", "done", "headers", "keep_body", "requested", "status", "waiter")

    def __init__(self, keep_body: bool = False) -> None:
        self.requested = False
        self.done = False
        self.status = 0
        self.headers: Sequence[tuple[bytes, bytes]] = ()
        self.keep_body = keep_body
        self.body = b""
        self.waiter: asyncio.Future[None] | None = None

    async def receive(self) -> Message:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Like a server: nothing more to read, so block until the response is complete,
        # then report the disconnect.
        if not self.done:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = message.get("headers", ())
        elif kind == "http.response.body":
            if self.keep_body:
                self.body += message.get("body", b"")
            if not message.get("more_body", False):
                self.done = True
                if self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(None)


class _Lifespan:
    """Minimal ASGI lifespan driver, tolerant of apps that do not implement the protocol."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._events: dict[str, asyncio.Event] = {}
        self._failure: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> Message:
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        kind = str(message["type"])
        if kind.endswith(".failed"):
            self._failure = str(message.get("message", ""))
        self._events.setdefault(kind.rsplit(".", 1)[0], asyncio.Event()).set()

    async def _run(self) -> None:
        scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        # Unsupported lifespan: the app raises; uvicorn's "auto" mode ignores that too.
        with contextlib.suppress(Exception):
            await self.app(scope, self._receive, self._send)

    async def _step(self, phase: str, timeout: float) -> None:
        event = self._events.setdefault(f"lifespan.{phase}", asyncio.Event())
        await self._queue.put({"type": f"lifespan.{phase}"})
        assert self._task is not None
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait(
                {waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if not event.is_set() and not self._task.done():
            raise TimeoutError(f"lifespan {phase} did not complete within {timeout}s")
        if self._failure is not None:
            raise RuntimeError(f"lifespan {phase} failed: {self._failure}")

    async def startup(self, timeout: float = 30.0) -> None:
        self._task = asyncio.create_task(self._run())
        await self._step("startup", timeout)

    async def shutdown(self, timeout: float = 10.0) -> None:
        if self._task is None:
            return
        if not self._task.done():
            await self._step("shutdown", timeout)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --------------------------------------------------------------------------------------------
# Running


@dataclass
class _Live:
    scenario: Scenario
    app: ASGIApp
    make_scope: ScopeFactory
    aclose: Closer | None
    observe: ResponseObserver | None
    lifespan: _Lifespan | None
    result: Result
    requests_per_round: int = 0


_CHUNK = 64


async def _drive(live: _Live, count: int, max_seconds: float) -> tuple[int, int]:
    """Run up to ``count`` requests (stopping early after ``max_seconds``).

    Returns ``(requests_done, elapsed_ns)``.
    """
    app = live.app
    make_scope = live.make_scope
    state = live.lifespan.state if live.lifespan is not None else {}
    expect = live.scenario.expect_status
    observe = live.observe
    errors = 0
    done = 0
    limit_ns = int(max_seconds * 1e9)
    clock = time.perf_counter_ns
    start = clock()
    while done < count:
        batch = min(_CHUNK, count - done)
        for _ in range(batch):
            exchange = Exchange()
            scope = make_scope()
            scope["state"] = state.copy()
            await app(scope, exchange.receive, exchange.send)
            if exchange.status != expect or not exchange.done:
                errors += 1
            if observe is not None:
                observe(exchange.status, exchange.headers)
        done += batch
        if clock() - start > limit_ns:
            break
    elapsed = clock() - start
    live.result.errors += errors
    return done, elapsed


async def _probe(live: _Live) -> None:
    """One request with the body kept, to fail loudly on a misconfigured scenario."""
    exchange = Exchange(keep_body=True)
    scope = live.make_scope()
    scope["state"] = (live.lifespan.state if live.lifespan is not None else {}).copy()
    await live.app(scope, exchange.receive, exchange.send)
    if live.observe is not None:
        live.observe(exchange.status, exchange.headers)
    if exchange.status != live.scenario.expect_status or not exchange.done:
        raise RuntimeError(
            f"expected status {live.scenario.expect_status}, got {exchange.status}"
            f" (complete={exchange.done}): {exchange.body[:200]!r}"
        )
    wanted = live.scenario.expect_in_body
    if wanted is not None and wanted not in exchange.body:
        raise RuntimeError(f"response body lacks {wanted!r}: {exchange.body[:300]!r}")


async def _setup(scenario: Scenario) -> _Live:
    produced = await scenario.factory()
    if isinstance(produced, Prepared):
        app, make_scope, aclose, observe = produced
    else:
        app, make_scope = produced
        aclose, observe = None, None
    lifespan: _Lifespan | None = None
    if scenario.lifespan:
        lifespan = _Lifespan(app)
        await lifespan.startup()
    return _Live(
        scenario,
        app,
        make_scope,
        aclose,
        observe,
        lifespan,
        Result(scenario.name, scenario.description),
    )


async def _teardown(live: _Live) -> None:
    try:
        if live.lifespan is not None:
            await live.lifespan.shutdown()
    finally:
        if live.aclose is not None:
            await live.aclose()


async def _calibrate(live: _Live, settings: Settings) -> None:
    await _probe(live)
    errors_before = live.result.errors
    done, elapsed = await _drive(live, settings.warmup_max_requests, settings.warmup_seconds)
    live.result.errors = errors_before  # warm-up errors are re-detected in the measured rounds
    per_request_s = elapsed / 1e9 / max(done, 1)
    wanted = int(settings.round_seconds / max(per_request_s, 1e-9))
    live.requests_per_round = max(settings.min_requests, min(settings.max_requests, wanted))
    live.result.requests_per_round = live.requests_per_round


async def harness_overhead_us(requests: int = 5_000) -> float:
    """Cost of the harness loop itself around a do-nothing ASGI app (included in all figures)."""

    async def null_app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def factory() -> tuple[ASGIApp, ScopeFactory]:
        return null_app, http_scope("/")

    live = await _setup(Scenario("null", factory, lifespan=False))
    await _drive(live, 500, 1.0)
    best = float("inf")
    for _ in range(3):
        done, elapsed = await _drive(live, requests, 1.0)
        best = min(best, elapsed / 1e3 / done)
    return best


async def run_inprocess(
    scenarios: Sequence[Scenario],
    settings: Settings,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Set up every scenario, measure them in interleaved rounds, tear them down."""
    lives: list[_Live] = []
    results: list[Result] = []
    try:
        for scenario in scenarios:
            try:
                live = await _setup(scenario)
            except (ImportError, ScenarioUnavailable) as exc:
                log(f"  skipped {scenario.name}: {one_line(str(exc))}")
                results.append(Result(scenario.name, scenario.description, skipped=str(exc)))
                continue
            except Exception as exc:
                log(f"  FAILED {scenario.name}: {type(exc).__name__}: {one_line(str(exc))}")
                results.append(
                    Result(scenario.name, scenario.description, skipped=f"failed: {exc}")
                )
                continue
            lives.append(live)
            results.append(live.result)
            try:
                await _calibrate(live, settings)
            except Exception as exc:
                log(f"  FAILED {scenario.name}: {type(exc).__name__}: {one_line(str(exc))}")
                live.result.skipped = f"failed: {exc}"
        measured = [live for live in lives if live.result.skipped is None]
        max_round_seconds = settings.round_seconds * 5
        for round_index in range(settings.rounds):
            shift = round_index % max(len(measured), 1)
            for live in measured[shift:] + measured[:shift]:
                if live.result.skipped is not None:
                    continue
                gc.collect()
                cpu_before = time.process_time_ns()
                try:
                    done, elapsed = await _drive(live, live.requests_per_round, max_round_seconds)
                except Exception as exc:
                    name = live.scenario.name
                    log(f"  FAILED {name}: {type(exc).__name__}: {one_line(str(exc))}")
                    live.result.skipped = f"failed: {exc}"
                    continue
                cpu = time.process_time_ns() - cpu_before
                live.result.per_round_us.append(elapsed / 1e3 / done)
                live.result.per_round_cpu_us.append(cpu / 1e3 / done)
    finally:
        for live in lives:
            try:
                await _teardown(live)
            except Exception as exc:
                log(f"  teardown of {live.scenario.name} failed: {type(exc).__name__}: {exc}")
    return results


async def profile_scenario(scenario: Scenario, seconds: float = 2.0) -> str:
    """Run one scenario under pyinstrument for about ``seconds`` and return the text report."""
    from pyinstrument import Profiler

    live = await _setup(scenario)
    try:
        await _calibrate(live, Settings(round_seconds=seconds))
        profiler = Profiler(interval=0.0002)
        profiler.start()
        done, elapsed = await _drive(live, live.requests_per_round, seconds * 3)
        profiler.stop()
        summary = (
            f"{scenario.name}: {done} requests, {elapsed / 1e3 / max(done, 1):.1f} {MICRO}s/request"
            f" under the profiler ({live.result.errors} errors)"
        )
        return summary + "\n" + str(profiler.output_text(unicode=True, color=False, show_all=False))
    finally:
        await _teardown(live)
