# -*- test-case-name: tests.test_startup -*-
"""
Start-up failures a lab user can act on.

A listener that cannot bind stops the whole lab with one line naming the
config key, the address, the reason and a hint::

    [leco] port: cannot listen on tcp://127.0.0.1:12300: address already in use
    (another lab running? change [leco] port)

Protocol plugins wrap each of their listening services in L{guard}; the
lab's root service (L{twisted_lab.service.LabService}) stops what already
started and re-raises the L{StartupError}, which twistd reports (a daemonized
start exits non-zero) and L{twisted_lab.tap} prints as one line.
"""
from __future__ import annotations

import errno
from typing import Any, Callable, TypeVar

from twisted.internet.error import CannotListenError

__all__ = ["StartupError", "guard", "bind_reason", "format_key"]

S = TypeVar("S")


def format_key(key: str) -> str:
    """
    The config key as a lab user reads it in a file: C{leco.port} becomes
    C{[leco] port}, C{plesty.serve[1].address} C{[plesty] serve[1].address}.
    """
    section, dot, rest = key.partition(".")
    return f"[{section}] {rest}" if dot else f"[{section}]"


class StartupError(Exception):
    """
    A listener could not start: the lab must not run half-started.

    @ivar key: the config key (C{"leco.port"}).
    @ivar address: what was to be bound (C{"tcp://127.0.0.1:12300"}).
    @ivar reason: why it failed, in words.
    """

    def __init__(self, key: str, address: str, reason: str) -> None:
        self.key, self.address, self.reason = key, address, reason
        super().__init__(key, address, reason)

    @property
    def hint(self) -> str:
        """What to do about it."""
        where = format_key(self.key)
        if "in use" in self.reason:
            return f"another lab running? change {where}"
        if "not available" in self.reason or "assign" in self.reason:
            return f"is that address one of this machine's? change {where}"
        if "permission" in self.reason.lower() or "access" in self.reason.lower():
            return f"ports below 1024 need privileges; change {where}"
        return f"check {where}"

    def __str__(self) -> str:
        return (f"{format_key(self.key)}: cannot listen on {self.address}: {self.reason} "
                f"({self.hint})")


_REASONS = {
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "address not available on this machine",
    errno.EACCES: "permission denied",
}


def bind_reason(error: BaseException) -> str:
    """
    The reason a bind failed, in words, from a Twisted, ZeroMQ or OS error.
    """
    code: Any = getattr(error, "errno", None)
    if isinstance(error, CannotListenError):
        inner = error.socketError
        code = getattr(inner, "errno", None) or (inner.args[0] if getattr(inner, "args", None)
                                                 else None)
        if code not in _REASONS:
            return str(getattr(inner, "strerror", None) or inner).lower()
    if code in _REASONS:
        return _REASONS[code]
    text = getattr(error, "strerror", None) or str(error)
    return str(text).lower() or type(error).__name__


def _bind_failure(error: BaseException) -> bool:
    if isinstance(error, (CannotListenError, OSError)):
        return True
    import zmq

    return isinstance(error, zmq.ZMQError)


def guard(service: S, key: str | Callable[[], tuple[str, str]], address: str = "") -> S:
    """
    Make a listening service's bind failure a L{StartupError} naming C{key}
    and C{address}.  The service stays what it was (same object, name and
    place in the tree); only its C{startService} is wrapped.

    @param service: the service that binds when started.
    @param key: the config key, or a callable returning C{(key, address)}
        (for a service that binds several addresses: it looks at which one
        failed).
    @param address: the address, when C{key} is a string.
    @return: C{service}.
    """
    locate = key if callable(key) else (lambda: (str(key), address))
    # twistd calls privilegedStartService first (strports listen there), then
    # startService
    for method in ("privilegedStartService", "startService"):
        setattr(service, method, _guarded(service, getattr(service, method), locate))
    return service


def _guarded(service: Any, start: Callable[[], None], locate: Callable[[], tuple[str, str]]
             ) -> Callable[[], None]:
    def guarded_start() -> None:
        try:
            start()
        except StartupError:
            raise
        except Exception as e:
            if not _bind_failure(e):
                raise
            service.running = False
            where, what = locate()
            raise StartupError(where, what, bind_reason(e)) from None

    return guarded_start
