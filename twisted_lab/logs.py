# -*- test-case-name: tests.test_logs -*-
"""
The lab's log output under twistd: a level (and per-component levels) that
really filter, human-readable text or JSON lines.

    twistd -n lab --log-level info,leco=debug,plesty=warn --log-format json

Components are short names for namespaces (L{COMPONENTS}); any other name is
taken as a namespace prefix (C{twisted_lab.protocols.leco.export}).
"""
from __future__ import annotations

import sys
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    InvalidLogLevelError,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    jsonFileLogObserver,
    textFileLogObserver,
)

from twisted_lab import loglevels

__all__ = ["COMPONENTS", "ALWAYS", "parse_levels", "make_predicate", "make_observer",
           "open_log_file"]

#: Short component names and the namespaces they stand for.
COMPONENTS = {
    "lab": "twisted_lab",
    "pymodaq": "twisted_lab.protocols.pymodaq",
    "leco": "twisted_lab.protocols.leco",
    "plesty": "twisted_lab.protocols.plesty",
    "la4": "twisted_lab.protocols.la4",
    "devices": "twisted_lab.devices",
    "registry": "twisted_lab.registry",
    "twisted": "twisted",
}

_ALIASES = {"warning": "warn", "crit": "critical", "err": "error"}


def _level(text: str) -> LogLevel:
    name = text.strip().lower()
    try:
        level: LogLevel = LogLevel.levelWithName(_ALIASES.get(name, name))
        return level
    except InvalidLogLevelError:
        raise ValueError(f"unknown log level {text!r}; levels are: debug, info, warn, error, "
                         "critical") from None


def parse_levels(text: str) -> tuple[LogLevel, dict[str, LogLevel]]:
    """
    Parse C{"info,leco=debug,plesty=warn"}: the default level, then
    component (or namespace) levels.

    @raise ValueError: an unknown level or an empty component.
    """
    default = LogLevel.info
    namespaces: dict[str, LogLevel] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, level = part.partition("=")
        if not eq:
            default = _level(name)
            continue
        name = name.strip()
        if not name:
            raise ValueError(f"no component before '=' in {part!r}")
        namespaces[COMPONENTS.get(name, name)] = _level(level)
    return default, namespaces


#: An event field that passes every level filter (the version line).
ALWAYS = "twisted_lab_always"


class _LabPredicate(LogLevelFilterPredicate):
    def __call__(self, event: Any) -> PredicateResult:
        result: PredicateResult = (PredicateResult.yes if event.get(ALWAYS)
                                   else super().__call__(event))
        return result


def make_predicate(default: LogLevel, namespaces: dict[str, LogLevel]
                   ) -> LogLevelFilterPredicate:
    """
    A predicate passing events at or above their namespace's level, and
    every event carrying the field L{ALWAYS}.
    """
    predicate = _LabPredicate(default)
    for namespace, level in namespaces.items():
        predicate.setLogLevelForNamespace(namespace, level)
    return predicate


def open_log_file(path: str, nodaemon: bool) -> IO[Any]:
    """
    The file twistd itself would log to: standard output for C{"-"} (or no
    file when not daemonized), else a daily-rotated file
    (C{twistd.log} when daemonized without C{--logfile}).
    """
    if path == "-" or (not path and nodaemon):
        return sys.stdout
    from twisted.python.logfile import LogFile

    log: Any = LogFile.fromFullPath(path or "twistd.log")
    return log  # type: ignore[no-any-return]


def make_observer(output: IO[Any], fmt: str, default: LogLevel,
                  namespaces: dict[str, LogLevel]) -> ILogObserver:
    """
    An observer writing C{fmt} (C{"text"}: one human-readable line per
    event; C{"json"}: one JSON object per line) to C{output}, filtered by
    level; its level predicate is installed in L{twisted_lab.loglevels}, so
    that LECO's C{set_log_level} changes it at run time.
    """
    base = (jsonFileLogObserver(output, recordSeparator="") if fmt == "json"
            else textFileLogObserver(output))
    predicate = make_predicate(default, namespaces)
    # LECO's set_log_level (and anything else using twisted_lab.loglevels)
    # changes this predicate's levels while the lab runs
    loglevels.install(predicate)
    return FilteringLogObserver(base, [predicate])
