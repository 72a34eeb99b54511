# -*- test-case-name: tests.test_loglevels -*-
"""
The lab's live log levels, changeable at run time (LECO's C{set_log_level}).

The lab's log observer filters with one
L{twisted.logger.LogLevelFilterPredicate}; whoever builds that observer
hands the predicate to L{install}, and L{set_level} then changes what the
operator sees, per namespace (a component: C{twisted_lab.protocols.leco},
a device class's namespace), at once.  Without an installed predicate,
L{filtering} wraps an observer in one.
"""
from __future__ import annotations

from twisted.logger import (FilteringLogObserver, ILogObserver, LogLevel,
                            LogLevelFilterPredicate)

__all__ = ["install", "installed", "set_level", "filtering", "LECO_LEVELS"]

#: LECO's level names and ours.
LECO_LEVELS = {"DEBUG": LogLevel.debug, "INFO": LogLevel.info, "WARNING": LogLevel.warn,
               "ERROR": LogLevel.error, "CRITICAL": LogLevel.critical}

_predicate: LogLevelFilterPredicate | None = None


def install(predicate: LogLevelFilterPredicate | None) -> None:
    """Make C{predicate} (the lab observer's filter) the one L{set_level} changes."""
    global _predicate
    _predicate = predicate


def installed() -> LogLevelFilterPredicate | None:
    """The predicate L{set_level} changes, if any."""
    return _predicate


def set_level(namespace: str, level: LogLevel) -> bool:
    """
    Set the level of C{namespace} (and the namespaces below it).

    @param namespace: a logger namespace; C{""} for the default level.
    @return: C{False} when no predicate is installed (nothing changed).
    """
    if _predicate is None:
        return False
    _predicate.setLogLevelForNamespace(namespace, level)
    return True


def filtering(observer: ILogObserver, default: LogLevel = LogLevel.info) -> ILogObserver:
    """
    Wrap C{observer} in a level filter and install its predicate.

    @return: the filtering observer to add to the log publisher.
    """
    predicate = LogLevelFilterPredicate(default)
    install(predicate)
    return FilteringLogObserver(observer, [predicate])
