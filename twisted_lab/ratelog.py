# -*- test-case-name: tests.test_ratelog -*-
"""
Log lines for repeated bad input, rate-limited and summarised.

A peer that sends 20,000 bad messages must not write 20,000 log lines.  A
L{BadInputLog} logs the first C{burst} lines per key (a peer, a peer and a
kind of error) in each C{period}; the rest are counted, and one summary line
per key says how many were left out once its period ends::

    bad = BadInputLog(Logger(), clock)
    bad.warn(peer, "dropped malformed LECO message from {peer}: {reason}",
             peer=peer, reason=str(error))

Every protocol logs its bad input through one of these.
"""
from __future__ import annotations

import time
from typing import Any, Hashable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

__all__ = ["BadInputLog", "PERIOD", "BURST", "MAX_KEYS"]

#: Seconds of each rate window.
PERIOD = 10.0
#: Lines logged per key in each window.
BURST = 5
#: Keys tracked at once; beyond, bad input is counted under one key.
MAX_KEYS = 1024

_OVERFLOW = ("*",)


class _Window:
    __slots__ = ("start", "logged", "dropped", "timer")

    def __init__(self, start: float) -> None:
        self.start = start
        self.logged = 0
        self.dropped = 0
        self.timer: IDelayedCall | None = None


class BadInputLog:
    """
    Rate-limited log lines for bad input.

    @param log: the logger the lines go to (its namespace is kept).
    @param clock: schedules a summary at the end of each window that left
        lines out (no timer otherwise); without one, a key's summary is
        written with its next line after the window.
    @param period: seconds per window.
    @param burst: lines logged per key and window.
    @param max_keys: keys tracked at once.
    """

    def __init__(self, log: Logger, clock: IReactorTime | None = None, period: float = PERIOD,
                 burst: int = BURST, max_keys: int = MAX_KEYS) -> None:
        self.log = log
        self.clock = clock
        self.period = period
        self.burst = burst
        self.max_keys = max_keys
        self._windows: dict[Hashable, _Window] = {}
        #: lines left out since the start, over all keys
        self.suppressed = 0

    def _now(self) -> float:
        return self.clock.seconds() if self.clock is not None else time.monotonic()

    def emit(self, level: LogLevel, key: Hashable, format: str, **fields: Any) -> bool:
        """
        Log C{format} with C{fields} unless C{key} has used its burst.

        @return: C{True} when the line was written.
        """
        now = self._now()
        window = self._windows.get(key)
        if window is not None and now - window.start >= self.period:
            self._summarise(key)
            window = None
        if window is None:
            if len(self._windows) >= self.max_keys:
                self._purge(now)
            if len(self._windows) >= self.max_keys and key not in self._windows:
                key = _OVERFLOW
                window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(now)
        if window.logged < self.burst:
            window.logged += 1
            self.log.emit(level, format, **fields)
            return True
        if window.timer is None and self.clock is not None:
            # a summary is due: write it when the window ends
            window.timer = self.clock.callLater(max(window.start + self.period - now, 0.0),
                                                self._summarise, key)
        window.dropped += 1
        self.suppressed += 1
        return False

    def _purge(self, now: float) -> None:
        """Forget the windows that ended (summarising those that dropped lines)."""
        for key, window in list(self._windows.items()):
            if now - window.start >= self.period:
                self._summarise(key)

    def warn(self, key: Hashable, format: str, **fields: Any) -> bool:
        """L{emit} at the C{warn} level."""
        return self.emit(LogLevel.warn, key, format, **fields)

    def info(self, key: Hashable, format: str, **fields: Any) -> bool:
        """L{emit} at the C{info} level."""
        return self.emit(LogLevel.info, key, format, **fields)

    def _summarise(self, key: Hashable) -> None:
        window = self._windows.pop(key, None)
        if window is None:
            return
        if window.timer is not None and window.timer.active():
            window.timer.cancel()
        if window.dropped:
            self.log.warn("left out {dropped} more lines like the above for {key} in "
                          "{period} s", dropped=window.dropped,
                          key="other peers" if key == _OVERFLOW else key, period=self.period)

    def flush(self) -> None:
        """Write every pending summary now (on stop)."""
        for key in list(self._windows):
            self._summarise(key)
