"""Loopback runner (report table [2]): uvicorn on 127.0.0.1, loaded by a lean asyncio client.

The client is a raw ``asyncio.Protocol`` speaking HTTP/1.1 with keep-alive (no httpx: its
per-request overhead would make the generator, not the server, the bottleneck on a 2-core box).
Each of ``concurrency`` connections keeps exactly one request in flight.  A run stops at
``max_requests`` or ``max_seconds``, whichever comes first, and the server is always killed.

Besides requests/s and p50/p99 latency the table shows the server process' CPU time per request
(from ``/proc/<pid>/stat``), which is much less sensitive to the client sharing the machine, and
the client's own CPU use (near 100 % means the generator is the bottleneck).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.report import one_line

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LoopbackSetup:
    """Per-run preparation result: server environment, request headers, cleanup."""

    env: Mapping[str, str] = field(default_factory=dict)
    headers: Sequence[tuple[str, str]] = ()
    cleanup: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class LoopbackScenario:
    name: str
    target: str
    """uvicorn import string ``module:attr`` (resolved with the repository root on sys.path)."""
    path: str = "/"
    headers: Sequence[tuple[str, str]] = ()
    factory: bool = False
    """Pass ``--factory`` to uvicorn (``attr`` is a zero-argument callable returning the app)."""
    setup: Callable[[], Awaitable[LoopbackSetup]] | None = None
    expect_status: int = 200
    description: str = ""


@dataclass(frozen=True)
class LoadSettings:
    concurrency: int = 16
    round_requests: int = 4_000
    round_seconds: float = 2.0
    """Each round loads every server once, with at most this many requests or seconds."""
    warmup_requests: int = 500
    warmup_seconds: float = 2.0
    startup_timeout: float = 20.0
    rounds: int = 5
    """Interleaved rounds."""

    @classmethod
    def quick(cls) -> LoadSettings:
        return cls(
            round_requests=2_000,
            round_seconds=1.0,
            warmup_requests=200,
            warmup_seconds=1.0,
            rounds=3,
        )


@dataclass
class LoadResult:
    name: str
    completed: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    skipped: str | None = None
    per_round_rps: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        """Median of the per-round rates (overall rate when there are no rounds)."""
        if self.per_round_rps:
            return statistics.median(self.per_round_rps)
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
        return ordered[index] / 1e6

    @property
    def server_cpu_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or self.completed == 0:
            return None
        return self.server_cpu_s * 1e6 / self.completed


# --------------------------------------------------------------------------------------------
# Minimal HTTP/1.1 client


def _parse_response(buffer: bytearray) -> tuple[int, int, bool] | None:
    """Return ``(status, bytes_consumed, connection_close)`` once a full response is buffered."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower() + b"\r\n"
    status = int(head[9:12])
    body_start = end + 4
    close = b"\r\nconnection: close\r\n" in head
    index = head.find(b"\r\ncontent-length:")
    if index >= 0:
        line_end = head.find(b"\r\n", index + 2)
        total = body_start + int(head[index + 17 : line_end])
        return (status, total, close) if len(buffer) >= total else None
    if b"\r\ntransfer-encoding: chunked\r\n" in head:
        position = body_start
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(buffer[position:line_end]).split(b";")[0], 16)
            position = line_end + 2
            if size == 0:
                if buffer[position : position + 2] == b"\r\n":
                    return status, position + 2, close
                trailer_end = buffer.find(b"\r\n\r\n", position)
                return None if trailer_end < 0 else (status, trailer_end + 4, close)
            position += size + 2
            if position > len(buffer):
                return None
    # No framing: 1xx/204/304 have no body; anything else is read-until-close (unsupported).
    return status, body_start, not (status < 200 or status in (204, 304))


class _Load:
    """Shared request budget and measurements for one load phase."""

    def __init__(self, max_requests: int, max_seconds: float, expect_status: int) -> None:
        self.max_requests = max_requests
        self.deadline = time.perf_counter_ns() + int(max_seconds * 1e9)
        self.expect_status = expect_status
        self.issued = 0
        self.completed = 0
        self.errors = 0
        self.latencies_ns: list[int] = []

    def active(self) -> bool:
        return self.issued < self.max_requests and time.perf_counter_ns() < self.deadline

    def take(self) -> bool:
        if not self.active():
            return False
        self.issued += 1
        return True

    def record(self, latency_ns: int, status: int) -> None:
        self.completed += 1
        self.latencies_ns.append(latency_ns)
        if status != self.expect_status:
            self.errors += 1


class _Connection(asyncio.Protocol):
    def __init__(self, request: bytes, load: _Load, finished: asyncio.Future[None]) -> None:
        self.request = request
        self.load = load
        self.finished = finished
        self.buffer = bytearray()
        self.sent_at = 0
        self.in_flight = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._next()

    def _next(self) -> None:
        assert self.transport is not None
        if self.load.take():
            self.in_flight = True
            self.sent_at = time.perf_counter_ns()
            self.transport.write(self.request)
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            parsed = _parse_response(self.buffer)
        except ValueError:
            self.load.errors += 1
            self.in_flight = False
            assert self.transport is not None
            self.transport.close()
            return
        if parsed is None:
            return
        status, consumed, close = parsed
        del self.buffer[:consumed]
        self.in_flight = False
        self.load.record(time.perf_counter_ns() - self.sent_at, status)
        if close:
            assert self.transport is not None
            self.transport.close()
        else:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.load.errors += 1
        if not self.finished.done():
            self.finished.set_result(None)


async def _connection_loop(port: int, request: bytes, load: _Load) -> None:
    loop = asyncio.get_running_loop()
    failures = 0
    while load.active() and failures < 20:
        finished: asyncio.Future[None] = loop.create_future()
        try:
            await loop.create_connection(
                lambda: _Connection(request, load, finished),  # noqa: B023
                HOST,
                port,
            )
        except OSError:
            failures += 1
            load.errors += 1
            await asyncio.sleep(0.02)
            continue
        await finished


def build_request(path: str, port: int, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def generate_load(
    port: int,
    request: bytes,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    expect_status: int = 200,
) -> tuple[_Load, float]:
    """Run one bounded load phase; return the measurements and the elapsed wall time (s)."""
    load = _Load(max_requests, max_seconds, expect_status)
    started = time.perf_counter()
    workers = [_connection_loop(port, request, load) for _ in range(concurrency)]
    try:
        await asyncio.wait_for(asyncio.gather(*workers), timeout=max_seconds + 15)
    except asyncio.TimeoutError:
        load.errors += 1
    return load, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Server process


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _process_cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[11], fields[12] are utime, stime (fields 14 and 15 of proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _read_tail(handle: IO[bytes], limit: int = 2_000) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")[-limit:]


@dataclass
class Server:
    process: asyncio.subprocess.Process
    port: int

    def cpu_seconds(self) -> float | None:
        return _process_cpu_seconds(self.process.pid)


async def _wait_ready(server: Server, request: bytes, timeout: float, log_file: IO[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.returncode is not None:
            raise RuntimeError(
                f"uvicorn exited with {server.process.returncode}: {_read_tail(log_file)}"
            )
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, server.port), timeout=1.0
            )
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)
            continue
        try:
            writer.write(request)
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            return
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    raise TimeoutError(f"uvicorn not ready after {timeout}s: {_read_tail(log_file)}")


@contextlib.asynccontextmanager
async def uvicorn_server(
    scenario: LoopbackScenario,
    env: Mapping[str, str],
    request_for: Callable[[int], bytes],
    startup_timeout: float,
) -> AsyncIterator[Server]:
    """Start ``uvicorn <target>`` on 127.0.0.1:<free port>; always terminate it on exit."""
    port = _free_port()
    child_env = dict(os.environ)
    child_env.update(env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    args = [
        "-m", "uvicorn", scenario.target,
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log", "--lifespan", "auto",
    ]  # fmt: skip
    if scenario.factory:
        args.append("--factory")
    with tempfile.TemporaryFile() as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=str(REPO_ROOT),
            env=child_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
        server = Server(process, port)
        try:
            await _wait_ready(server, request_for(port), startup_timeout, log_file)
            yield server
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout=5.0)
                except asyncio.TimeoutError:
                    process.kill()
                    await process.wait()


@dataclass
class _Running:
    scenario: LoopbackScenario
    server: Server
    request: bytes
    result: LoadResult


async def _start(
    scenario: LoopbackScenario, settings: LoadSettings, stack: contextlib.AsyncExitStack
) -> _Running:
    prepared = await scenario.setup() if scenario.setup is not None else LoopbackSetup()
    if prepared.cleanup is not None:
        stack.push_async_callback(prepared.cleanup)
    headers = [*scenario.headers, *prepared.headers]

    def request_for(port: int) -> bytes:
        return build_request(scenario.path, port, headers)

    server = await stack.enter_async_context(
        uvicorn_server(scenario, prepared.env, request_for, settings.startup_timeout)
    )
    request = request_for(server.port)
    warm, _ = await generate_load(
        server.port,
        request,
        concurrency=settings.concurrency,
        max_requests=settings.warmup_requests,
        max_seconds=settings.warmup_seconds,
        expect_status=scenario.expect_status,
    )
    if warm.completed == 0 or warm.errors == warm.completed:
        raise RuntimeError(f"warm-up failed ({warm.completed} done, {warm.errors} errors)")
    return _Running(scenario, server, request, LoadResult(scenario.name))


async def _measure(running: _Running, settings: LoadSettings) -> None:
    result = running.result
    cpu_before = running.server.cpu_seconds()
    client_before = time.process_time()
    load, elapsed = await generate_load(
        running.server.port,
        running.request,
        concurrency=settings.concurrency,
        max_requests=settings.round_requests,
        max_seconds=settings.round_seconds,
        expect_status=running.scenario.expect_status,
    )
    result.client_cpu_s += time.process_time() - client_before
    cpu_after = running.server.cpu_seconds()
    if cpu_before is not None and cpu_after is not None:
        result.server_cpu_s = (result.server_cpu_s or 0.0) + cpu_after - cpu_before
    result.completed += load.completed
    result.errors += load.errors
    result.elapsed_s += elapsed
    result.latencies_ns += load.latencies_ns
    if elapsed > 0:
        result.per_round_rps.append(load.completed / elapsed)


async def run_loopback(
    scenarios: Sequence[LoopbackScenario],
    settings: LoadSettings,
    log: Callable[[str], None] = print,
) -> list[LoadResult]:
    """Start every server, warm each up, then load them in interleaved rounds.

    All servers stay up for the whole run (an idle uvicorn costs nothing), so machine noise hits
    every scenario alike; each round loads every server once, in a rotated order.
    """
    results: list[LoadResult] = []
    async with contextlib.AsyncExitStack() as stack:
        running: list[_Running] = []
        for scenario in scenarios:
            try:
                started = await _start(scenario, settings, stack)
            except Exception as exc:
                log(f"  FAILED {scenario.name}: {type(exc).__name__}: {one_line(str(exc))}")
                results.append(LoadResult(scenario.name, skipped=f"failed: {exc}"))
                continue
            running.append(started)
            results.append(started.result)
        for round_index in range(settings.rounds):
            shift = round_index % max(len(running), 1)
            for item in running[shift:] + running[:shift]:
                try:
                    await _measure(item, settings)
                except Exception as exc:
                    log(f"  FAILED {item.scenario.name}: {type(exc).__name__}: {exc}")
                    item.result.skipped = f"failed: {exc}"
            running = [item for item in running if item.result.skipped is None]
    return results
