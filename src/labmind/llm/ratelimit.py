"""A client-side rate limiter that brains' worker threads share: requests per minute, optionally tokens too.

Sliding one-minute windows: a request waits until fewer than `requests_per_minute` (rounded down) requests
started in the last 60 s, and (when a token limit is set) until fewer than `tokens_per_minute` tokens were used in the
last 60 s. A call's tokens are known only after it returns, so they are counted then (`record_tokens`);
the limit therefore holds for the calls that follow, which is how providers count them too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute is not None and requests_per_minute < 1:
            raise ValueError(f"requests_per_minute must be >= 1, or None for no limit; got {requests_per_minute}")
        if tokens_per_minute is not None and tokens_per_minute <= 0:
            raise ValueError(f"tokens_per_minute must be > 0, or None for no limit; got {tokens_per_minute}")
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        self._token_sum = 0

    def acquire(self) -> float:
        """Block until a request may start; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_locked(now)
                if wait <= 0:
                    self._starts.append(now)
                    return waited
            # Sleep outside the lock so other threads can record tokens or take their turn meanwhile.
            self._sleep(wait)
            waited += wait

    def record_tokens(self, tokens: int) -> None:
        if self.tokens_per_minute is None or tokens <= 0:
            return
        with self._lock:
            self._tokens.append((self._clock(), tokens))
            self._token_sum += tokens

    def _wait_locked(self, now: float) -> float:
        horizon = now - WINDOW_S
        while self._starts and self._starts[0] <= horizon:
            self._starts.popleft()
        while self._tokens and self._tokens[0][0] <= horizon:
            self._token_sum -= self._tokens.popleft()[1]
        wait = 0.0
        capacity = int(self.requests_per_minute) if self.requests_per_minute is not None else None
        if capacity is not None and len(self._starts) >= capacity:
            # The oldest starts must leave the window until fewer than the limit remain; wait for the last of them.
            wait = max(wait, self._starts[len(self._starts) - capacity] + WINDOW_S - now)
        if self.tokens_per_minute is not None and self._token_sum >= self.tokens_per_minute:
            # Drop the oldest token entries until the sum falls under the limit; wait for the last one dropped.
            remaining = self._token_sum
            for at, n in self._tokens:
                remaining -= n
                if remaining < self.tokens_per_minute:
                    wait = max(wait, at + WINDOW_S - now)
                    break
        return wait
