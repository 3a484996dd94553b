"""A lean HTTP/1.1 load generator: asyncio, kept-alive connections, no client library.

The webhook benchmark measures the receiver's answer time. A thread pool of
httpx clients in one interpreter adds its own waits to every figure (sixteen
threads taking turns on one interpreter lock, on a machine whose two cores the
daemon and the sandbox share), so the sender here is one event loop writing
prepared requests and reading only the status line, the headers and the body
length: the time measured is from the request handed to the socket to the
answer's last byte read.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Request = Callable[[], bytes]  # made when sent: a signature over a timestamp of that moment


TIMEOUT = 10.0  # an answer slower than this is a failure (status 0), as httpx's default was
WARM = 32  # connections opened before the clock starts


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # How late each request left against its schedule: the sender's own lag, which a
    # latency figure must not hide.
    lags: list[float] = field(default_factory=list)
    scheduled: list[float] = field(default_factory=list)  # each request's offset, in order

    def add(self, status: int, seconds: float, lag: float, at: float) -> None:
        self.latencies.append(seconds)
        self.lags.append(lag)
        self.scheduled.append(at)
        self.statuses[status] = self.statuses.get(status, 0) + 1


def post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST, as bytes on the wire."""
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Closed(Exception):
    """The server closed a kept-alive connection (idle past its timeout, or told to)."""


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status, and whether the connection may be used again."""
    first = await reader.readline()
    if not first:
        raise _Closed
    status = int(first.split()[1])
    length, reusable = 0, True
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            raise ValueError("a chunked answer: this sender reads Content-Length bodies only")
        elif name == "connection" and value.strip().lower() == "close":
            reusable = False
    await reader.readexactly(length)
    return status, reusable


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
_LOST = (_Closed, ConnectionError, asyncio.IncompleteReadError)


async def _run(host: str, port: int, timed: Sequence[tuple[float, Request]]) -> Results:
    results = Results()
    idle: list[Connection] = [await asyncio.open_connection(host, port) for _ in range(WARM)]

    async def exchange(conn: Connection, payload: bytes) -> tuple[int, bool]:
        reader, writer = conn
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(_answer(reader), TIMEOUT)

    async def send(at: float, request: Request) -> None:
        conn = idle.pop() if idle else await asyncio.open_connection(host, port)
        payload = request()
        started = time.perf_counter()
        try:
            status, reusable = await exchange(conn, payload)
        except _LOST:
            # As any client does with a kept-alive connection the server has closed: a new
            # one, the request again, and the clock started again.
            conn[1].close()
            conn = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            try:
                status, reusable = await exchange(conn, payload)
            except (*_LOST, TimeoutError):
                status, reusable = 0, False
        except TimeoutError:
            status, reusable = 0, False
        results.add(status, time.perf_counter() - started, started - (began + at), at)
        if reusable:
            idle.append(conn)
        else:
            conn[1].close()

    began = time.perf_counter()
    tasks = []
    for at, request in timed:
        await asyncio.sleep(max(0.0, began + at - time.perf_counter()))
        tasks.append(asyncio.create_task(send(at, request)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return results


def send_all(host: str, port: int, timed: Sequence[tuple[float, Request]]) -> Results:
    """Send each request at its offset in seconds from now, on connections opened
    beforehand (one more is opened when none is free); an answer that does not come
    within TIMEOUT, or a connection lost twice, counts as status 0."""
    # The sender's own pauses must not count as the receiver's: a full collection of this
    # process (the benchmark's imports, the prepared requests) took 100 to 130 ms and,
    # falling in the burst, was measured as the receiver's answer time.
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(_run(host, port, timed))
    finally:
        gc.enable()
