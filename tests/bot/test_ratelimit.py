"""The per-user rate limit (issue 15, finding 9): a monotonic clock, and idle windows dropped."""

from __future__ import annotations

from bot.ratelimit import WINDOW_S, RateLimiter, Verdict


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides_and_the_refusal_is_told_once_per_window() -> None:
    ticks = Ticks()
    limiter = RateLimiter(2, clock=ticks)
    assert [limiter.check(1) for _ in range(4)] == [
        Verdict.OK,
        Verdict.OK,
        Verdict.NOTIFY,
        Verdict.DROP,
    ]
    ticks.now += WINDOW_S
    assert limiter.check(1) is Verdict.OK


def test_idle_windows_are_dropped() -> None:
    ticks = Ticks()
    limiter = RateLimiter(3, clock=ticks)
    for user in range(100):
        limiter.check(user)
    assert limiter.tracked == 100
    ticks.now += WINDOW_S
    limiter.check(7)  # any check sweeps the windows that emptied
    assert limiter.tracked == 1


def test_a_limited_user_stays_limited_while_others_come_and_go() -> None:
    ticks = Ticks()
    limiter = RateLimiter(1, clock=ticks)
    assert limiter.check(1) is Verdict.OK
    ticks.now += WINDOW_S / 2
    for user in range(2, 50):
        limiter.check(user)
    assert limiter.check(1) is Verdict.NOTIFY  # its window is still full


def test_the_default_clock_is_monotonic_not_the_wall_clock() -> None:
    import time

    limiter = RateLimiter(1)
    assert limiter.clock is time.monotonic
