"""The clocks of one timed run in this process: wall and CPU time, the machine's
stolen ticks (``/proc/stat``) and this process's run delay (``schedstat``).

Split from ``serving.py``: what a run's conditions were, apart from how it ran.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

__all__ = ["RunClock", "TimedRun", "load_average", "raise_priority"]


def _cpu_s() -> float:
    """CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks of all CPUs so far (``/proc/stat``); 0s if unknown."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return (0, 0)
    if len(fields) < 9 or fields[0] != "cpu":
        return (0, 0)
    # user nice system idle iowait irq softirq steal (guest time is in user)
    ticks = [int(x) for x in fields[1:9]]
    return ticks[7], sum(ticks)


def _wait_ns() -> int:
    """Nanoseconds this process's threads spent runnable, waiting for a core.

    The second field of each thread's ``schedstat`` (run delay): the time
    another process of this machine held the core a llama.cpp thread needed.
    """
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile, or no schedstat
    return total


@dataclass(frozen=True)
class RunClock:
    """Clocks read before and after a run."""

    wall_s: float
    cpu_s: float
    steal_ticks: int
    total_ticks: int
    wait_ns: int

    @classmethod
    def now(cls) -> RunClock:
        steal, total = _machine_ticks()
        return cls(time.perf_counter(), _cpu_s(), steal, total, _wait_ns())


@dataclass(frozen=True)
class TimedRun:
    """One timed run: its seconds and the conditions it ran in."""

    seconds: float
    cpu_share: float  # CPU seconds / (wall x threads)
    steal_share: float  # stolen / all CPU ticks of the machine meanwhile
    wait_share: float  # run delay / (wall x threads)

    @classmethod
    def between(cls, start: RunClock, end: RunClock, threads: int) -> TimedRun:
        wall = end.wall_s - start.wall_s
        ticks = end.total_ticks - start.total_ticks
        if wall <= 0:
            return cls(wall, 0.0, 0.0, 0.0)
        return cls(
            seconds=wall,
            cpu_share=(end.cpu_s - start.cpu_s) / (wall * threads),
            steal_share=(end.steal_ticks - start.steal_ticks) / ticks
            if ticks > 0
            else 0.0,
            wait_share=(end.wait_ns - start.wait_ns) / 1e9 / (wall * threads),
        )


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


# --------------------------------------------------------------------------
# In the fresh process
# --------------------------------------------------------------------------


def raise_priority(wanted: str) -> tuple[str, str | None]:
    """Ask for the scheduling class ``wanted``; (class obtained, note or None).

    ``realtime`` is SCHED_FIFO at the lowest real-time priority, set before
    llama.cpp starts its threads so that they inherit it (as ``llama-bench
    --prio`` sets it on each of its threads).
    """
    if wanted != "realtime":
        return "normal", None
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return "normal", f"real-time priority refused ({reason}); measured as normal"
    return "realtime", None
