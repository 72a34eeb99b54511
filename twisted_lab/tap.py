# -*- test-case-name: tests.test_tap -*-
"""
The twistd/twist plugin: C{twistd -n lab [--config lab.toml]}.

It parses options, checks the config (C{--check}), sets up the log output
(C{--log-level}, C{--log-format}) and calls
L{twisted_lab.service.build_service}.  Mistakes are reported in one line,
without twistd's usage text or a traceback: a bad config before start-up
(exit status 1), a listener that cannot bind at start-up (exit status 1,
also when daemonized).
"""
from __future__ import annotations

import os
import platform
import signal
import sys
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

from twisted_lab import __version__
from twisted_lab.errors import ConfigError
from twisted_lab.logs import COMPONENTS

__all__ = ["Options", "makeService", "docs_location", "version_line"]

log = Logger()


def version_line() -> str:
    """C{twisted_lab 0.1.0 (Twisted 24.7.0, Python 3.11.2)}."""
    from twisted import __version__ as twisted_version

    return (f"twisted_lab {__version__} (Twisted {twisted_version}, "
            f"Python {platform.python_version()})")


def docs_location() -> str:
    """
    Where the documentation is: the copy installed with the package
    (C{<prefix>/share/doc/twisted-lab}), else the source tree's C{docs/}.
    """
    installed = os.path.join(sys.prefix, "share", "doc", "twisted-lab")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


class Options(usage.Options):
    """
    Options of C{twistd lab}.
    """

    synopsis = ("[--config lab.toml] [--check] [--list] [--log-level LEVELS] "
                "[--log-format text|json] [--version]")
    longdesc = (
        "Serve laboratory instruments over PyMoDAQ TCP/IP, LECO, PLESTY and LA4 pycom "
        "from one process. With no --config, runs the built-in simulated lab (stage, "
        "powermeter, spectrometer, camera, la4) on every protocol, on 127.0.0.1 only: "
        "PyMoDAQ server 6341, LECO Coordinator 12300 (namespace 'lab'), PLESTY powermeter "
        "5555, stage 5556 and camera 5557, LECO data proxy 11100/11099, LA4 node 5000 "
        "and its coordinator's callbacks 5001. Documentation, the configuration reference "
        "(configuration.md) and example configs: " + docs_location() + " . --version prints "
        "the twisted_lab version."
    )
    optParameters = [
        ["config", "c", None, "A TOML lab description (devices and protocol sections). "
                              "Default: the built-in simulated lab."],
        ["log-level", None, "info", "Lowest level logged (debug, info, warn, error, critical), "
                                    "then per component: info,leco=debug,plesty=warn "
                                    "(components: " + ", ".join(sorted(COMPONENTS)) + ")."],
        ["log-format", None, "text", "text (one human-readable line per event) or json "
                                     "(one JSON object per line), written where twistd logs "
                                     "(--logfile; standard output with -n)."],
    ]
    optFlags = [
        ["check", None, "Validate the config, print a summary and exit."],
        ["list", None, "List the protocol plugins and device types found, and exit."],
    ]

    def opt_version(self) -> None:
        """Print the twisted_lab version (and Twisted's, Python's) and exit."""
        print(version_line())
        raise SystemExit(0)

    def postOptions(self) -> None:
        """
        Load the config now, so that a bad one is reported before startup:
        one line on standard error (no usage text) and exit status 1.
        """
        from twisted_lab.check import check, render
        from twisted_lab.config import default_config, load_config
        from twisted_lab.logs import parse_levels

        if self["list"]:
            self._print_plugins()
            raise SystemExit(0)
        try:
            self.log_levels = parse_levels(self["log-level"])
        except ValueError as e:
            raise SystemExit(f"twistd lab: --log-level: {e}") from None
        if self["log-format"] not in ("text", "json"):
            raise SystemExit(f"twistd lab: --log-format must be text or json, "
                             f"got {self['log-format']!r}")
        try:
            self.lab_config = load_config(self["config"]) if self["config"] else default_config()
        except ConfigError as e:
            raise SystemExit(str(e)) from None
        if self["check"]:
            report = check(self.lab_config)
            sys.stdout.write(render(self.lab_config, report))
            raise SystemExit(0 if report.ok else 1)
        self._no_pidfile_by_default()

    def _no_pidfile_by_default(self) -> None:
        """
        In the foreground (C{-n}), write no C{twistd.pid} unless C{--pidfile}
        names another file: a lab started from a checkout leaves nothing
        behind.  A daemon keeps twistd's pid file (how it is stopped).
        """
        parent: Any = getattr(self, "parent", None)
        if parent is None or not parent.get("nodaemon"):
            return
        if os.path.basename(str(parent.get("pidfile") or "")) == "twistd.pid" and \
                not any(a.startswith("--pidfile") for a in sys.argv[1:]):
            parent["pidfile"] = ""

    def log_observer(self) -> ILogObserver | None:
        """
        The observer twistd should log to: its own choice of file, our
        format and levels.  C{None} when twistd logs to syslog.
        """
        from twisted_lab.logs import make_observer, open_log_file

        parent: Any = getattr(self, "parent", None)
        # only under twistd (whose options have nodaemon); twist logs by itself
        if parent is None or "nodaemon" not in getattr(parent, "opts", {}) or \
                parent.get("syslog"):
            return None
        output = open_log_file(parent.get("logfile") or "", bool(parent.get("nodaemon")))
        default, namespaces = self.log_levels
        return make_observer(output, self["log-format"], default, namespaces)

    def _print_plugins(self) -> None:
        from twisted_lab.discovery import device_plugins, protocol_plugins, unavailable

        out = sys.stdout
        out.write("protocols (config sections):\n")
        for name, plugin in sorted(protocol_plugins().items()):
            out.write(f"  [{name}]  {plugin.description}\n")
        out.write("device types:\n")
        for name, plugin in sorted(device_plugins().items()):
            try:
                reason = unavailable(plugin)
            except Exception as e:  # a broken third-party plugin must not hide the others
                reason = f"its plugin failed: {type(e).__name__}: {e}"
            state = f"  [not usable here: {reason}]" if reason else ""
            out.write(f"  {name}  {plugin.description}{state}\n")


def check_devices(config: Any) -> None:
    """
    Check every device's options against its driver (C{--check}): the
    driver class exists, takes those arguments, and the type can run here.

    @raise ConfigError: naming the file, C{devices.<name>.<key>} and the reason.
    """
    from twisted_lab.check import device_errors

    for key, reason in device_errors(config):
        raise ConfigError(reason, config.file, key)


class _LabProcess(MultiService):
    """
    The lab under twistd: gives the application the lab's log observer (the
    hook twistd reads before logging starts) when attached to it.
    """

    def __init__(self, lab: IService, observer: ILogObserver | None) -> None:
        super().__init__()
        self.setName("twisted_lab")
        self.lab = lab
        self.observer = observer
        lab.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        if self.observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.observer)


def _report_startup_errors() -> None:
    """A L{StartupError} ending the process is one line on standard error."""
    from twisted_lab.startup import StartupError

    previous = sys.excepthook

    def excepthook(kind: Any, value: Any, tb: Any) -> None:
        if isinstance(value, StartupError):
            stderr = sys.__stderr__ or sys.stderr
            stderr.write(f"twistd lab: {value}\n")
            stderr.flush()
        else:
            previous(kind, value, tb)

    sys.excepthook = excepthook


def makeService(options: Options) -> IService:
    """
    Build the lab described by the parsed options.
    """
    from twisted.internet import reactor

    from twisted_lab.logs import ALWAYS
    from twisted_lab.memory import TrimService, reuse_large_buffers
    from twisted_lab.registry import DeviceRegistry
    from twisted_lab.service import build_service

    log.info("{version} starting", version=version_line(), **{ALWAYS: True})
    # a lab started in the background of a script inherits an ignored SIGINT;
    # restore the default so that the reactor installs its handler (Ctrl-C,
    # kill -INT stop the lab)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _report_startup_errors()
    # camera-sized buffers are reused, not mapped afresh (and page-faulted in)
    # for every frame; the TrimService below gives what is kept back
    reuse_large_buffers()
    registry = DeviceRegistry(reactor)
    config: Any = options.lab_config
    lab = build_service(registry, config, reactor)
    observer = options.log_observer() if hasattr(options, "log_levels") else None
    process = _LabProcess(lab, observer)
    # every few seconds, the free memory goes back to the system; started
    # last, it also freezes the startup objects (short collector pauses)
    TrimService(reactor, freeze=True).setServiceParent(process)
    return process
