"""A circuit breaker for a backend that fails as a whole (a completions server, a model child).

While a backend is down every call would wait out its deadline on the model worker and hold
every other user's turn behind it. After `failures` consecutive failed calls the breaker
*opens*: calls fail at once (the user gets the usual apology) for `cooldown_s`; then it is
*half-open* and lets exactly one call through as a probe. The probe's success closes it; its
failure opens it for another cool-down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger(__name__)

DEFAULT_BREAKER_FAILURES = 3  # consecutive failed calls that open the breaker
DEFAULT_BREAKER_COOLDOWN_S = 30.0  # how long an open breaker fails calls before a probe


class BackendUnavailable(RuntimeError):
    """The backend as a whole failed (connection, deadline, dead or hung child): no row is at
    fault, so retrying the rows one by one would only wait again for each of them."""


class CircuitOpen(BackendUnavailable):
    """The breaker is open: the call was refused without reaching the backend."""


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls fail at once until the cool-down is over
    HALF_OPEN = "half_open"  # one probe call is under way; the others fail at once


class CircuitBreaker:
    """Counts consecutive failures of one backend; thread-safe (calls come from worker threads).

    Use: `before()` (raises `CircuitOpen`), then `succeeded()` or `failed()` for that call.
    """

    def __init__(
        self,
        name: str,
        *,
        failures: int = DEFAULT_BREAKER_FAILURES,
        cooldown_s: float = DEFAULT_BREAKER_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.name = name
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._cooled_down():
                return BreakerState.HALF_OPEN  # the next call is the probe
            return self._state

    def before(self) -> None:
        """Let a call through, or raise `CircuitOpen` (open, or a probe already under way)."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.OPEN and self._cooled_down():
                self._state = BreakerState.HALF_OPEN
                log.info("%s: probing the backend after %.0f s", self.name, self.cooldown_s)
                return
            raise CircuitOpen(
                f"{self.name} is unavailable (circuit open after {self._consecutive} failed calls)"
            )

    def succeeded(self) -> None:
        with self._lock:
            if self._state is not BreakerState.CLOSED:
                log.info("%s: the backend answers again", self.name)
            self._state = BreakerState.CLOSED
            self._consecutive = 0

    def failed(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._state is BreakerState.HALF_OPEN or self._consecutive >= self.failures:
                if self._state is not BreakerState.OPEN:
                    log.warning(
                        "%s: %d failed calls in a row; failing calls for %.0f s",
                        self.name,
                        self._consecutive,
                        self.cooldown_s,
                    )
                self._state = BreakerState.OPEN
                self._opened_at = self.clock()

    def _cooled_down(self) -> bool:
        return self.clock() - self._opened_at >= self.cooldown_s
