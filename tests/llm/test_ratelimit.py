"""RateLimiter: sliding one-minute windows for requests and tokens, shared by threads."""

from __future__ import annotations

import threading
import time

import pytest

from labmind.llm import ratelimit
from labmind.llm.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_requests_beyond_the_limit_wait_for_the_oldest_to_leave_the_window() -> None:
    t = FakeTime()
    limiter = RateLimiter(requests_per_minute=3, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        assert limiter.acquire() == 0.0
        t.now += 1.0
    # Starts at 1000, 1001, 1002; it is now 1003: the fourth may start when the first leaves, at 1060.
    assert limiter.acquire() == pytest.approx(57.0)
    assert t.now == pytest.approx(1060.0)
    assert limiter.acquire() == pytest.approx(1.0)  # the second start (1001) leaves at 1061


def test_a_fractional_limit_rounds_down() -> None:
    t = FakeTime()
    limiter = RateLimiter(requests_per_minute=2.5, clock=t.clock, sleep=t.sleep)
    assert [limiter.acquire() for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire() == pytest.approx(60.0)


def test_tokens_used_in_the_last_minute_hold_back_the_next_request() -> None:
    t = FakeTime()
    limiter = RateLimiter(tokens_per_minute=10_000, clock=t.clock, sleep=t.sleep)
    limiter.acquire()
    limiter.record_tokens(6_000)
    t.now += 10
    limiter.acquire()
    limiter.record_tokens(6_000)  # 12,000 in the window now
    t.now += 5
    # Dropping the first 6,000 (recorded at 1000) brings the window under the limit: wait until 1060.
    assert limiter.acquire() == pytest.approx(45.0)


def test_no_limits_never_wait() -> None:
    t = FakeTime()
    limiter = RateLimiter(clock=t.clock, sleep=t.sleep)
    for _ in range(1000):
        limiter.acquire()
        limiter.record_tokens(10**6)
    assert t.sleeps == []


@pytest.mark.parametrize("kw", [{"requests_per_minute": 0.5}, {"tokens_per_minute": -5}])
def test_nonsense_limits_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be >"):
        RateLimiter(**kw)


def test_threads_never_exceed_the_limit_in_any_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "WINDOW_S", 0.4)  # a short window keeps the test fast; the logic is the same
    limiter = RateLimiter(requests_per_minute=3)
    starts: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(3):
            limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    starts.sort()
    assert len(starts) == 12
    # Any 4 consecutive starts span at least one window (less a little for thread wake-up jitter).
    assert min(b - a for a, b in zip(starts, starts[3:], strict=False)) >= 0.4 - 0.05
    assert starts[-1] - starts[0] >= 3 * 0.4 - 0.05
