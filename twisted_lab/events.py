# -*- test-case-name: tests.test_registry -*-
"""
Events devices and the registry send to their subscribers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["LabEvent", "Listener", "add_listener", "ADDED", "REMOVED", "ONLINE", "OFFLINE", "CHANGED", "DATA"]

#: A device was registered.
ADDED = "added"
#: A device was unregistered.
REMOVED = "removed"
#: A device (or the peer behind it) became reachable.
ONLINE = "online"
#: A device (or the peer behind it) went away.
OFFLINE = "offline"
#: A parameter changed value (C{parameter} and C{value} are set).
CHANGED = "changed"
#: A device produced new data (a grab or a new position; C{value} is the data).
DATA = "data"


@dataclass(frozen=True)
class LabEvent:
    """
    Something happened to a device.

    @ivar kind: one of L{ADDED}, L{REMOVED}, L{ONLINE}, L{OFFLINE}, L{CHANGED}, L{DATA}.
    @ivar device: the device name.
    @ivar parameter: for L{CHANGED}, the parameter name.
    @ivar value: for L{CHANGED} the new value; for L{DATA} the data.
    """

    kind: str
    device: str
    parameter: str | None = None
    value: Any = None


#: A subscriber: called synchronously with each event.
Listener = Callable[[LabEvent], None]


def add_listener(listeners: list[Listener], listener: Listener) -> Callable[[], None]:
    """
    Add C{listener} to C{listeners} (a device's or the registry's).

    @return: a callable that removes it again (once; later calls do nothing).
    """
    listeners.append(listener)

    def unsubscribe() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return unsubscribe
