"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next
request as soon as the last answer arrived. Raw asyncio streams keep the client's own cost far
below the server's, so the numbers are the server's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return (
            ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000 if ordered else 0.0
        )


def request_bytes(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int, make: Callable[[int], bytes], index: int, stop: float, result: Result
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(make(index))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            if not head.startswith(b"HTTP/1.1 2"):
                result.errors += 1
    finally:
        writer.close()


async def run(port: int, make: Callable[[int], bytes], concurrency: int, seconds: float) -> Result:
    result = Result(concurrency, 0, 0, seconds, [])
    # A short warm-up, not counted: connections open, caches fill.
    await asyncio.gather(
        *(
            _connection(port, make, i, time.perf_counter() + 0.5, Result(0, 0, 0, 0, []))
            for i in range(concurrency)
        )
    )
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, make, i, started + seconds, result) for i in range(concurrency))
    )
    result.seconds = time.perf_counter() - started
    return result
