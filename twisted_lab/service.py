# -*- test-case-name: tests.test_service -*-
"""
Building the service tree of a lab: what embedding applications call.

    >>> registry = DeviceRegistry(reactor)
    >>> build_service(registry, load_config("lab.toml"), reactor).setServiceParent(app)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger

from twisted_lab.config import Config
from twisted_lab.discovery import device_plugin, protocol_plugin
from twisted_lab.registry import DeviceRegistry
from twisted_lab.startup import StartupError

__all__ = ["LabService", "build_service", "build_devices"]


class LabService(MultiService):
    """
    The root of a lab's service tree: a child C{"devices"} holding the
    devices that own threads or timers, then one child per protocol.

    @ivar registry: the registry every child serves.
    @ivar reactor: when it provides L{IReactorCore}, "lab started" is logged
        once it runs (under twistd: after its signal handlers are in place,
        so a SIGINT sent on that line stops the lab cleanly); otherwise as
        soon as the children have started.
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, reactor: Any = None) -> None:
        super().__init__()
        self.registry = registry
        self.reactor = reactor
        self.setName("lab")

    def startService(self) -> None:
        """
        Start every child, then log what runs (once the reactor runs).

        @raise StartupError: a listener could not bind; the children that
            started are stopped again, so the lab never runs half-started.
        """
        try:
            super().startService()
        except StartupError as e:
            self._failed(e)
        if IReactorCore.providedBy(self.reactor):
            self.reactor.callWhenRunning(self._announce)
        else:
            self._announce()

    def _announce(self) -> None:
        """Log "lab started" with what runs (not when it was stopped already)."""
        if not self.running:
            return
        self.log.info("lab started: {count} devices ({devices}); services: {services}",
                      count=len(self.registry), devices=", ".join(self.registry.names()),
                      services=", ".join(s.name or repr(s) for s in self))

    def privilegedStartService(self) -> None:
        """
        Let every child bind what needs privileges (twistd calls this before
        L{startService}; the PyMoDAQ listeners bind here).

        @raise StartupError: as L{startService}.
        """
        try:
            super().privilegedStartService()
        except StartupError as e:
            self._failed(e)

    def _failed(self, error: StartupError) -> NoReturn:
        self.log.critical("{message}", message=str(error), key=error.key,
                          address=error.address, reason=error.reason)
        self._stop_started()
        raise error

    def _stop_started(self) -> None:
        self.running = False
        for child in reversed(list(self)):
            if child.running:
                maybeDeferred(child.stopService).addErrback(
                    lambda f: self.log.failure("stopping after a failed start", f))
        self.registry.leases.clear()

    def stopService(self) -> Deferred[None]:
        """Stop every child (protocols first), then drop every lease."""
        d: Deferred[None] = super().stopService()

        def stopped(result: Any) -> Any:
            self.registry.leases.clear()
            self.log.info("lab stopped")
            return result

        return d.addBoth(stopped)


def build_devices(registry: DeviceRegistry, config: Config, reactor: Any) -> MultiService:
    """
    Create and register every configured device.  A device with an
    C{attach_registry(registry)} method (an adapter, which acts on other
    devices) is given the registry once registered.

    @return: a service whose children are the devices that provide
        L{IService} (their threads and timers start and stop with it).
    """
    devices = MultiService()
    devices.setName("devices")
    for entry in config.devices:
        device = device_plugin(entry.type, config.file).make_device(entry.name, entry.options,
                                                                    reactor)
        registry.register(device)
        attach = getattr(device, "attach_registry", None)
        if attach is not None:
            attach(registry)
        service = IService(device, None)
        if service is not None:
            if service.name is None:
                service.setName(entry.name)
            service.setServiceParent(devices)
    return devices


def build_service(registry: DeviceRegistry, config: Config, reactor: Any) -> LabService:
    """
    Build the whole lab: devices registered in C{registry}, and one service
    per protocol section, under one L{LabService}.

    @param registry: the registry to fill and serve.
    @param config: from L{twisted_lab.config.load_config} or
        L{twisted_lab.config.default_config}.
    @param reactor: the reactor every part uses.
    @return: a service to start (C{setServiceParent(application)} or
        C{startService()}).
    """
    top = LabService(registry, reactor)
    build_devices(registry, config, reactor).setServiceParent(top)
    for section in config.protocols:
        service = protocol_plugin(section.name, config.file).make_service(
            registry, _beside(section.options, config.file), reactor)
        if service.name is None:
            service.setName(section.name)
        service.setServiceParent(top)
    return top


def _beside(options: dict[str, Any], config_file: str | None) -> dict[str, Any]:
    """
    Options naming files (keys ending in C{_file}) with a relative path,
    resolved against the folder of the config file that set them.
    """
    if not config_file:
        return options
    folder = Path(config_file).resolve().parent
    out = dict(options)
    for key, value in options.items():
        if key.endswith("_file") and isinstance(value, str) and value \
                and not Path(value).is_absolute():
            out[key] = str(folder / value)
    return out
