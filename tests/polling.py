# -*- test-case-name: tests.test_polling -*-
"""
The one polling helper of the real-socket tests: let the reactor run until
a condition holds.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from twisted.internet.task import deferLater

__all__ = ["until"]


async def until(condition: Callable[[], Any], timeout: float = 5.0, what: str = "",
                interval: float = 0.01, reactor: Any = None) -> None:
    """
    Let the reactor run until C{condition()} is true.

    @param timeout: wall-clock seconds before giving up.
    @param what: names the condition in the failure message.
    @param interval: seconds between checks.
    @param reactor: the reactor to wait on (the global one by default).
    @raise AssertionError: the condition did not hold within C{timeout}.
    """
    if reactor is None:
        from twisted.internet import reactor
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s"
                                 + (f": {what}" if what else ""))
        await deferLater(reactor, interval)
