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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Request = Callable[[], bytes]  # made when sent: a signature over a timestamp of that moment


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, status: int, seconds: float) -> None:
        self.latencies.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1


def post(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST, as bytes on the wire."""
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Closed(Exception):
    """The server closed a kept-alive connection that sat idle past its timeout."""


async def _answer(reader: asyncio.StreamReader) -> int:
    first = await reader.readline()
    if not first:
        raise _Closed
    status = int(first.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _run(host: str, port: int, timed: Sequence[tuple[float, Request]]) -> Results:
    results = Results()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    began = time.perf_counter()

    async def send(request: Request) -> None:
        reader, writer = idle.pop() if idle else await asyncio.open_connection(host, port)
        payload = request()
        started = time.perf_counter()
        try:
            writer.write(payload)
            await writer.drain()
            status = await _answer(reader)
        except (_Closed, ConnectionResetError):
            # As any client does with a kept-alive connection the server has closed: a new
            # one, the request again, and the clock started again.
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            status = await _answer(reader)
        results.add(status, time.perf_counter() - started)
        idle.append((reader, writer))

    tasks = []
    for at, request in timed:
        await asyncio.sleep(max(0.0, began + at - time.perf_counter()))
        tasks.append(asyncio.create_task(send(request)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return results


def send_all(host: str, port: int, timed: Sequence[tuple[float, Request]]) -> Results:
    """Send each request at its offset in seconds from now; a connection is reused once
    its answer is in, and one more is opened when none is free."""
    return asyncio.run(_run(host, port, timed))
