"""Wall-clock timing: the best of several calls, the one way every speed figure here is taken."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """The best of several timed calls, every time taken, and the last call's result."""

    best: float
    times: tuple[float, ...]
    result: Any = None


def timed(fn: Callable[[], Any], repeats: int = 3, setup: Callable[[], Any] | None = None) -> Timing:
    """Call `fn` `repeats` times (with `setup` untimed before each call) and keep the fastest wall time (perf_counter)."""
    times, result = [], None
    for _ in range(repeats):
        if setup:
            setup()
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return Timing(min(times), tuple(times), result)
