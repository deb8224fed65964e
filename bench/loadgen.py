"""Load generator for ``bench/serve.py``: many agents against one reconciler, on loopback.

Runs in a process of its own so the server does not share its interpreter with the clients.
Speaks just enough HTTP/1.1 over raw asyncio streams (keep-alive, Content-Length or chunked
bodies) to be cheap at 10,000 connections, and reports as JSON lines on stdout::

    loadgen.py register --port P --bootstrap-file F --appliances A.json --tokens-out T.json
    loadgen.py hold     --port P --tokens T.json [--agents N] [--wait 60]
    loadgen.py rate     --port P --tokens T.json [--clients 100] [--seconds 10]

``hold`` learns every agent's digest on short connections, prints ``{"phase": "fetched"}``
and waits for a ``hold`` line on stdin; then it opens one long-poll per agent and keeps it
open (a 304 is polled again at once, a 200 is recorded and polled again with the new ETag;
with ``--report`` the agent first posts a healthy status for the new state, as an agent
that applied it would, ``--apply-seconds`` after the answer), until a ``stop`` line on
stdin or ``--max-seconds``. Every loop here is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
PROGRESS_EVERY = 2.0


class HTTPError(Exception):
    """A connection that failed or an answer that is not HTTP/1.1 as expected."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        try:
            reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
        except OSError as e:
            raise HTTPError(f"connect: {e.strerror or e}") from e
        return cls(reader, writer)

    async def send(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> None:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            await self.writer.drain()
        except OSError as e:
            raise HTTPError(f"send: {e}") from e

    async def receive(self) -> Answer:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._chunks()
            else:
                body = b""
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as e:
            raise HTTPError(f"receive: {type(e).__name__}") from e
        except (ValueError, IndexError) as e:
            raise HTTPError(f"malformed answer: {e}") from e
        return Answer(status, headers, body)

    async def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Answer:
        await self.send(method, target, headers, body)
        return await self.receive()

    def close(self) -> None:
        self.writer.close()


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def agent_headers(token: str, etag: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if etag is not None:
        headers["If-None-Match"] = etag
    return headers


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- register ----------------------------------------------------------------------------


async def register(args: argparse.Namespace) -> None:
    bootstrap = Path(args.bootstrap_file).read_text().strip()
    appliances: list[str] = json.loads(Path(args.appliances).read_text())
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in appliances:
        queue.put_nowait(name)
    tokens: dict[str, str] = {}
    failures: Counter[str] = Counter()
    deadline = time.monotonic() + args.max_seconds

    async def worker() -> None:
        conn: Connection | None = None
        while not queue.empty() and time.monotonic() < deadline:
            name = queue.get_nowait()
            facts = {
                "applianceId": name,
                "hostname": name,
                "ip": "127.0.0.1",
                "arch": "amd64",
                "agentVersion": "bench",
            }
            body = json.dumps(facts).encode()
            headers = {"Authorization": f"Bearer {bootstrap}", "Content-Type": "application/json"}
            try:
                conn = conn or await Connection.open(args.port)
                answer = await conn.request("POST", "/v1/register", headers, body)
            except HTTPError as e:
                failures[str(e)] += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            if answer.status == 200:
                tokens[name] = json.loads(answer.body)["token"]
            else:
                failures[f"HTTP {answer.status}"] += 1
        if conn is not None:
            conn.close()

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    seconds = time.monotonic() - start
    Path(args.tokens_out).write_text(json.dumps(tokens))
    emit(phase="registered", registered=len(tokens), seconds=seconds, failures=dict(failures))


# -- hold --------------------------------------------------------------------------------


@dataclass
class HoldState:
    etags: dict[str, str] = field(default_factory=dict)
    open_polls: int = 0
    max_open: int = 0
    repolls: int = 0
    woken: list[tuple[str, float]] = field(default_factory=list)  # (agent, wall-clock) per 200
    errors: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def fetch_etags(
    port: int, tokens: dict[str, str], concurrency: int, state: HoldState, deadline: float
) -> None:
    """Each agent's current digest, over a few keep-alive connections (not held)."""
    names = list(tokens)
    cursor = 0

    async def worker() -> None:
        nonlocal cursor
        conn: Connection | None = None
        while cursor < len(names) and time.monotonic() < deadline:
            name = names[cursor]
            cursor += 1
            try:
                conn = conn or await Connection.open(port)
                answer = await conn.request("GET", "/v1/desired", agent_headers(tokens[name]))
            except HTTPError as e:
                state.errors[f"fetch {e}"] += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            if answer.status == 200:
                state.etags[name] = answer.headers["etag"]
            else:
                state.errors[f"fetch HTTP {answer.status}"] += 1
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def long_poll_agent(
    port: int,
    name: str,
    token: str,
    etag: str,
    wait: float,
    state: HoldState,
    connects: asyncio.Semaphore,
    report: bool,
    apply_seconds: float = 0.0,
) -> None:
    """One agent: a connection held open by back-to-back long-polls until told to stop."""
    async with connects:
        try:
            conn = await Connection.open(port)
        except HTTPError as e:
            state.errors[str(e)] += 1
            return
    target = f"/v1/desired?wait={wait:g}"
    try:
        while not state.stop.is_set():
            await conn.send("GET", target, agent_headers(token, etag))
            state.open_polls += 1
            state.max_open = max(state.max_open, state.open_polls)
            receiving = asyncio.ensure_future(conn.receive())
            stopping = asyncio.ensure_future(state.stop.wait())
            try:
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                state.open_polls -= 1
                stopping.cancel()
            if not receiving.done():
                receiving.cancel()
                return
            answer = receiving.result()
            if answer.status == 200:
                state.woken.append((name, time.time()))
                etag = answer.headers["etag"]
                if report and apply_seconds:  # applying it: the server closes the idle
                    conn.close()  # connection meanwhile, the agent reports on a new one
                    await asyncio.sleep(apply_seconds)
                    async with connects:
                        conn = await Connection.open(port)
                if report:
                    # the tag is the digest, with "+<fingerprint>" for a cluster's join
                    digest = etag.strip('"').split("+", 1)[0]
                    status = {"appliedDigest": digest, "health": "healthy"}
                    headers = {**agent_headers(token), "Content-Type": "application/json"}
                    posted = await conn.request(
                        "POST", "/v1/status", headers, json.dumps(status).encode()
                    )
                    if posted.status != 202:
                        state.errors[f"status HTTP {posted.status}"] += 1
            elif answer.status == 304:
                state.repolls += 1
            else:
                state.errors[f"long-poll HTTP {answer.status}"] += 1
                return
    except HTTPError as e:
        state.errors[str(e)] += 1
    finally:
        conn.close()


async def read_command() -> str:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip() or "stop"  # end of input: stop


async def hold(args: argparse.Namespace) -> None:
    tokens: dict[str, str] = json.loads(Path(args.tokens).read_text())
    tokens = dict(list(tokens.items())[: args.agents])
    state = HoldState()
    deadline = time.monotonic() + args.max_seconds
    start = time.monotonic()
    await fetch_etags(args.port, tokens, args.fetch_concurrency, state, deadline)
    emit(
        phase="fetched",
        agents=len(state.etags),
        seconds=time.monotonic() - start,
        errors=dict(state.errors),
    )
    command = await read_command()
    if command != "hold":
        return
    connects = asyncio.Semaphore(args.connect_concurrency)
    start = time.monotonic()
    agents = [
        asyncio.ensure_future(
            long_poll_agent(
                args.port,
                name,
                tokens[name],
                etag,
                args.wait,
                state,
                connects,
                args.report,
                args.apply_seconds,
            )
        )
        for name, etag in state.etags.items()
    ]
    stopper = asyncio.ensure_future(read_command())
    sent_all = False
    while time.monotonic() < deadline and not stopper.done():
        await asyncio.wait({stopper}, timeout=PROGRESS_EVERY)
        if not sent_all and state.open_polls + state.errors.total() >= len(agents):
            sent_all = True
            emit(phase="sent", open=state.open_polls, seconds=time.monotonic() - start)
        emit(
            phase="progress",
            open=state.open_polls,
            max_open=state.max_open,
            woken=len(state.woken),
            repolls=state.repolls,
            errors=state.errors.total(),
        )
    state.stop.set()
    await asyncio.wait(agents, timeout=10)
    stopper.cancel()
    emit(
        phase="done",
        agents=len(agents),
        max_open=state.max_open,
        repolls=state.repolls,
        woken=state.woken,
        errors=dict(state.errors),
    )


# -- rate --------------------------------------------------------------------------------


async def rate(args: argparse.Namespace) -> None:
    tokens: dict[str, str] = json.loads(Path(args.tokens).read_text())
    chosen = list(tokens.values())[: args.clients]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    pairs: list[tuple[str, str]] = []

    async def client(token: str, go: asyncio.Event, until: list[float]) -> None:
        try:
            conn = await Connection.open(args.port)
            first = await conn.request("GET", "/v1/desired", agent_headers(token))
        except HTTPError as e:
            errors[str(e)] += 1
            return
        if first.status != 200:
            errors[f"HTTP {first.status}"] += 1
            return
        etag = first.headers["etag"]
        pairs.append((token, etag.strip('"')))
        headers = agent_headers(token, etag)
        await go.wait()
        try:
            while time.monotonic() < until[0]:
                sent = time.perf_counter()
                answer = await conn.request("GET", "/v1/desired", headers)
                latencies.append(time.perf_counter() - sent)
                statuses[answer.status] += 1
        except HTTPError as e:
            errors[str(e)] += 1
        finally:
            conn.close()

    go = asyncio.Event()
    until = [float("inf")]
    clients = [asyncio.ensure_future(client(t, go, until)) for t in chosen]
    await asyncio.sleep(0)
    while len(pairs) + errors.total() < len(chosen):  # every client has its ETag
        await asyncio.sleep(0.05)
    emit(phase="ready", clients=len(pairs))
    start = time.monotonic()
    until[0] = start + args.seconds
    go.set()
    await asyncio.wait(clients, timeout=args.seconds + 30)
    seconds = time.monotonic() - start
    emit(
        phase="rate",
        clients=len(chosen),
        requests=len(latencies),
        seconds=seconds,
        statuses={str(k): v for k, v in statuses.items()},
        p50=quantile(latencies, 0.50),
        p99=quantile(latencies, 0.99),
        errors=dict(errors),
        pairs=pairs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    reg = commands.add_parser("register")
    reg.add_argument("--bootstrap-file", required=True)
    reg.add_argument("--appliances", required=True, help="JSON list of appliance names")
    reg.add_argument("--tokens-out", required=True)
    reg.add_argument("--concurrency", type=int, default=32)
    held = commands.add_parser("hold")
    held.add_argument("--tokens", required=True)
    held.add_argument("--agents", type=int, default=10_000)
    held.add_argument("--wait", type=float, default=60)
    held.add_argument("--fetch-concurrency", type=int, default=32)
    held.add_argument("--connect-concurrency", type=int, default=256)
    held.add_argument("--report", action="store_true", help="report each new state healthy")
    held.add_argument(
        "--apply-seconds", type=float, default=0.0, help="how long applying a state takes"
    )
    ratep = commands.add_parser("rate")
    ratep.add_argument("--tokens", required=True)
    ratep.add_argument("--clients", type=int, default=100)
    ratep.add_argument("--seconds", type=float, default=10)
    for sub in (reg, held, ratep):
        sub.add_argument("--port", type=int, required=True)
        sub.add_argument("--max-seconds", type=float, default=900, help="stop by then regardless")
    args = parser.parse_args()
    limit = raise_nofile()
    emit(phase="start", command=args.command, nofile=limit)
    run = {"register": register, "hold": hold, "rate": rate}[args.command]
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
