# -*- test-case-name: tests.test_web_logbuffer -*-
"""
A bounded ring of recent log events, for the console's log view.

The web service installs it on the global log publisher when it starts and
removes it when it stops; library code never installs observers.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from twisted.logger import ILogObserver, formatEvent
from zope.interface import implementer

__all__ = ["LogRing", "LEVELS"]

#: Level names from the least to the most severe.
LEVELS = ("debug", "info", "warn", "error", "critical")


def _component(event: dict[str, Any]) -> str:
    namespace = event.get("log_namespace") or ""
    system = event.get("log_system") or ""
    return str(namespace or system or "-")


@implementer(ILogObserver)
class LogRing:
    """
    Keeps the last C{size} log events as plain dicts (time, level,
    component, text); older ones fall out.

    @param size: how many events are kept.
    """

    def __init__(self, size: int = 1000) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=max(1, size))
        self._seq = 0

    def __call__(self, event: dict[str, Any]) -> None:
        """Record one event (never raises)."""
        try:
            level = event.get("log_level")
            text = formatEvent(event)
            failure = event.get("log_failure")
            if failure is not None:
                text = f"{text}: {failure.getErrorMessage()}"
            self._seq += 1
            self._events.append({
                "seq": self._seq,
                "time": float(event.get("log_time") or 0.0),
                "level": name if (name := getattr(level, "name", "info")) in LEVELS else "info",
                "component": _component(event),
                "text": text[:2000],
            })
        except Exception:  # an observer must never raise into the publisher
            pass

    def __len__(self) -> int:
        return len(self._events)

    def recent(self, level: str = "debug", component: str = "", limit: int = 200,
               after: int = 0) -> list[dict[str, Any]]:
        """
        The most recent events at or above C{level} whose component contains
        C{component}, oldest first.

        @param level: one of L{LEVELS}.
        @param component: a substring of the component (empty for all).
        @param limit: at most this many (the newest).
        @param after: only events with a sequence number above this.
        @raise ValueError: an unknown level.
        """
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; known levels are {', '.join(LEVELS)}")
        floor = LEVELS.index(level)
        out = [e for e in self._events
               if e["seq"] > after and LEVELS.index(e["level"]) >= floor
               and component.lower() in e["component"].lower()]
        return out[-limit:] if limit > 0 else []
