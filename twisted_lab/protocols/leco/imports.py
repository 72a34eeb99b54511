# -*- test-case-name: tests.test_leco_interop -*-
"""
Import a remote LECO Actor (pyleco's, or one of ours) as a registry device.

L{RemoteActorDevice} maps the device model onto pyleco's generic Actor
methods: C{get} → C{get_parameters}, C{set} → C{set_parameters}, C{call} →
C{call_action}.  It asks the Actor C{pong} every C{poll_interval} seconds
and goes offline when the Coordinator reports the Actor unknown (-32093 or
-32092) or it does not answer; pending calls then fail with
L{DeviceOffline}; it comes back online (same object, same name) when the
Actor answers again.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twisted_lab.access import Role
from twisted_lab.description import Action, Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.devices.remote import RemoteDeviceMixin
from twisted_lab.errors import DeviceOffline, DeviceTimeout, UnknownParameter
from twisted_lab.protocols.leco.component import Component
from twisted_lab.protocols.leco.locallink import LocalHub
from twisted_lab.protocols.leco.rpc import NODE_UNKNOWN, RECEIVER_UNKNOWN
from twisted_lab.registry import DeviceRegistry
from twisted_lab.waiting import PendingCalls

__all__ = ["RemoteActorDevice", "DirectorService"]


class RemoteActorDevice(RemoteDeviceMixin, BaseDevice):
    """
    A remote pyleco Actor as an L{IDevice}.

    @param name: the registry name.
    @param actor: the Actor's LECO name (full name across nodes).
    @param component: the L{Component} the requests go through.
    @param parameters: parameter names to describe (any name may be read or
        written; the Actor decides).
    @param actions: action names to describe (any action may be called).
    @param timeout: deadline of each request.
    @param poll_interval: seconds between liveness checks.
    """

    log = Logger()

    def __init__(self, name: str, actor: str, component: Component,
                 parameters: Sequence[str] = (), actions: Sequence[str] = (),
                 timeout: float = 2.0, poll_interval: float = 1.0, doc: str = "") -> None:
        super().__init__(name, [Parameter(p, "any") for p in parameters],
                         [Action(a) for a in actions], doc or f"LECO actor {actor}")
        self.actor = actor
        self.component = component
        self.timeout = timeout
        self.poll_interval = poll_interval
        #: calls in flight, by a local number (their deadline is the Component's)
        self._pending: PendingCalls[int] = PendingCalls(component.reactor)
        self._ids = itertools.count()

    # -- liveness ---------------------------------------------------------------------

    def start_polling(self) -> None:
        """Start the liveness checks."""
        self.start_liveness(self.check, self.poll_interval, self.component.reactor, now=True)

    def stop_polling(self) -> None:
        """Stop the liveness checks and fail pending calls."""
        self.stop_liveness(f"LECO director of {self.name} stopped")

    def check(self) -> Deferred[None]:
        """Ask the Actor C{pong}; update the online state from the answer."""
        d = self.component.ask(self.actor, "pong", timeout=min(self.timeout,
                                                               self.poll_interval * 2))

        def alive(_: Any) -> None:
            if self.link_up():
                self.log.info("LECO actor {actor} ({device}) is back", actor=self.actor,
                              device=self.name)

        def dead(failure: Any) -> None:
            code = getattr(failure.value, "rpc_code", None)
            if code in (RECEIVER_UNKNOWN, NODE_UNKNOWN) or failure.check(DeviceTimeout):
                self._go_offline(f"LECO actor {self.actor} is unreachable: {failure.value}")
            elif failure.check(DeviceOffline):
                self._go_offline(str(failure.value))
            # any other error: the actor answered, so it is there
            else:
                self.link_up()

        return d.addCallbacks(alive, dead)

    def _go_offline(self, reason: str) -> None:
        if self.link_down(reason):
            self.log.warn("{device} offline: {reason}", device=self.name, reason=reason)

    def fail_pending(self, error: Exception) -> None:
        """Fail the calls in flight."""
        self._pending.fail_all(error)

    def _ask(self, method: str, params: Any) -> Deferred[Any]:
        try:
            self._check_online()
        except DeviceOffline:
            from twisted.internet.defer import fail
            return fail()
        key = next(self._ids)
        outer = self._pending.add(key)
        inner = self.component.ask(self.actor, method, params, timeout=self.timeout)

        def done(result: Any) -> None:
            self._pending.resolve(key, result[0])

        def failed(failure: Any) -> None:
            entry = self._pending.pop(key)  # this call fails with its own error
            code = getattr(failure.value, "rpc_code", None)
            if code in (RECEIVER_UNKNOWN, NODE_UNKNOWN):
                self._go_offline(f"LECO actor {self.actor} is unknown to the Coordinator")
            if entry is not None:
                entry.deferred.errback(failure)

        inner.addCallbacks(done, failed)
        return outer

    # -- IDevice ---------------------------------------------------------------------

    def get(self, name: str) -> Deferred[Any]:
        """Read one parameter through C{get_parameters}."""
        d = self._ask("get_parameters", {"parameters": [name]})

        def pick(values: Any) -> Any:
            if not isinstance(values, dict) or name not in values:
                raise UnknownParameter(self.name, name)
            return values[name]

        return d.addCallback(pick)

    def set(self, name: str, value: Any) -> Deferred[Any]:
        """Write one parameter through C{set_parameters}."""
        if name in self._description.parameters:
            try:
                value = self._description.parameters[name].validate(value, self.name)
            except Exception:
                from twisted.internet.defer import fail
                return fail()
        d = self._ask("set_parameters", {"parameters": {name: value}})

        def written(_: Any) -> Any:
            self.changed(name, value)
            return value

        return d.addCallback(written)

    def call(self, action: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run an action through C{call_action}."""
        return self._ask("call_action", {"action": action, "args": list(args),
                                         "kwargs": kwargs})


class DirectorService(Service):
    """
    A Director Component plus the remote devices it registers.

    @param registry: where the remote devices are registered.
    @param remotes: dicts with C{name} (registry name), C{actor} (LECO
        name), C{kind} (C{generic}, C{pymodaq_actuator},
        C{pymodaq_detector}), and optionally C{parameters}, C{actions}.
    @param hub: an in-process Coordinator's L{LocalHub} (see L{Component}).
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, remotes: Sequence[dict[str, Any]],
                 coordinator: str, reactor: Any, name: str = "twisted_lab_director",
                 timeout: float = 2.0, poll_interval: float = 1.0,
                 hub: LocalHub | None = None,
                 role_of: Callable[[str], Role | None] | None = None) -> None:
        self.registry = registry
        self.component = Component(name, coordinator, reactor, timeout, hub=hub,
                                   role_of=role_of)
        self.remotes = list(remotes)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.devices: list[Any] = []

    def startService(self) -> None:
        Service.startService(self)
        self.component.startService()
        for remote in self.remotes:
            device = self._make(remote)
            if device is None:
                continue
            self.registry.register(device)
            self.devices.append(device)
            start = getattr(device, "start_polling", None)
            if start is not None:
                start()

    def _make(self, remote: dict[str, Any]) -> Any:
        kind = remote.get("kind", "generic")
        if kind == "generic":
            return RemoteActorDevice(remote["name"], remote.get("actor") or remote["name"],
                                     self.component, remote.get("parameters", ()),
                                     remote.get("actions", ()), self.timeout,
                                     self.poll_interval)
        try:
            from twisted_lab.protocols.leco.pymodaq_director import make_remote
        except ImportError as e:
            self.log.error("cannot import {name} of kind {kind}: {error}", name=remote["name"],
                           kind=kind, error=str(e))
            return None
        return make_remote(component=self.component, registry=self.registry,
                           name=remote["name"], actor=remote.get("actor") or remote["name"],
                           kind=kind, reactor=self.component.reactor, timeout=self.timeout)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        for device in self.devices:
            stop = getattr(device, "stop_polling", None) or getattr(device, "shutdown", None)
            if stop is not None:
                stop()
            if device.name in self.registry and self.registry.lookup(device.name) is device:
                self.registry.unregister(device.name)
        self.devices = []
        return self.component.stopService()
