"""A scripted HTTP peer for wire-level provider tests: the real SDK talks to it through httpx2.MockTransport."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx2

Reply = httpx2.Response | Callable[[httpx2.Request], httpx2.Response]


class Wire:
    """Answers requests with `replies` in order (the last one repeats) and keeps what was sent and when."""

    def __init__(self, *replies: Reply) -> None:
        if not replies:
            raise ValueError("Wire needs at least one reply")
        self._replies = list(replies)
        self.requests: list[httpx2.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        self.times.append(time.monotonic())
        reply = self._replies[min(len(self.requests), len(self._replies)) - 1]
        return reply(request) if callable(reply) else reply

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    @property
    def last_body(self) -> dict[str, Any]:
        return self.bodies[-1]

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests: the SDK's retry waits."""
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def ok(body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(200, json=body, headers=headers)


def error(status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None) -> httpx2.Response:
    if isinstance(body, str):
        return httpx2.Response(status, text=body, headers=headers)
    return httpx2.Response(status, json=body, headers=headers)
