# -*- test-case-name: tests.test_registry -*-
"""
The device registry: the one place every protocol finds devices.

A device that reaches the registry through one protocol is served by every
other one.  Leases live here too (L{twisted_lab.leases}), so a lock taken
through one protocol holds on all of them: protocols make mutating calls
through L{DeviceRegistry.guarded}, which checks the caller's lease first.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import directlyProvides, providedBy

from twisted_lab.errors import LabError, UnknownDevice
from twisted_lab.events import ADDED, REMOVED, LabEvent, Listener, add_listener
from twisted_lab.interfaces import IActuator, IDevice
from twisted_lab.leases import Lease, LeaseTable, Owner
from twisted_lab.waiting import KeyedWaiters

__all__ = ["DeviceRegistry", "GuardedDevice", "Owner"]


class DeviceRegistry:
    """
    Devices by name, their events, and the leases on them.

    @param clock: drives lease expiry; the global reactor when not given.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.leases = LeaseTable(self.clock)
        self._devices: dict[str, Any] = {}
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._waiters: KeyedWaiters[str, Any] = KeyedWaiters()
        self._listeners: list[Listener] = []

    # -- devices ---------------------------------------------------------------

    def register(self, device: Any) -> None:
        """
        Add a device under its C{name}.

        @param device: an L{IDevice} provider.
        @raise LabError: a different device of that name is registered.
        """
        name = device.name
        current = self._devices.get(name)
        if current is device:
            return
        if current is not None:
            raise LabError(f"a device named {name!r} is already registered")
        if not IDevice.providedBy(device):
            raise LabError(f"{device!r} does not provide IDevice")
        self._devices[name] = device
        self._unsubscribe[name] = device.subscribe(self._relay)
        self.log.info("registered device {device} ({kind})", device=name,
                      kind=_kind_of(device))
        self._emit(LabEvent(ADDED, name))
        self._waiters.fire(name, device)

    def unregister(self, name: str) -> Any:
        """
        Remove a device; its leases are left to their owners.

        @return: the device removed.
        @raise UnknownDevice: no such device.
        """
        device = self.lookup(name)
        del self._devices[name]
        self._unsubscribe.pop(name)()
        self.log.info("unregistered device {device}", device=name)
        self._emit(LabEvent(REMOVED, name))
        return device

    def lookup(self, name: str) -> Any:
        """
        The device of that name, synchronously.

        @raise UnknownDevice: no such device.
        """
        try:
            return self._devices[name]
        except KeyError:
            raise UnknownDevice(name, list(self._devices)) from None

    def get(self, name: str) -> Deferred[Any]:
        """
        @return: a L{Deferred} firing with the device, or failing with
            L{UnknownDevice}.
        """
        try:
            return succeed(self.lookup(name))
        except UnknownDevice:
            return fail()

    def when_registered(self, name: str) -> Deferred[Any]:
        """
        Wait for a device to be registered.

        @return: a new L{Deferred} for each caller, firing with the device
            (at once when it is already registered); cancelling it stops
            the wait.
        """
        if name in self._devices:
            return succeed(self._devices[name])
        return self._waiters.when(name)

    def names(self) -> list[str]:
        """The registered device names, in registration order."""
        return list(self._devices)

    def __contains__(self, name: object) -> bool:
        return name in self._devices

    def __len__(self) -> int:
        return len(self._devices)

    # -- events ----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """
        Call C{listener(event)} for every L{LabEvent}: added, removed, and
        every device's online, offline, changed and data events.

        @return: a callable that unsubscribes.
        """
        return add_listener(self._listeners, listener)

    def _relay(self, event: LabEvent) -> None:
        self._emit(event)

    def _emit(self, event: LabEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                self.log.failure("registry listener {listener!r} failed on {kind} of {device}",
                                 listener=listener, kind=event.kind, device=event.device)

    # -- leases ----------------------------------------------------------------

    def acquire(self, owner: Owner, resources: Iterable[str], ttl: float | None = None) -> Lease:
        """
        Lease resources (device names or C{device/sub}) all-or-nothing.

        @raise LeaseConflict: naming the holder.
        """
        return self.leases.acquire(owner, resources, ttl)

    def renew(self, lease: Lease, ttl: float | None = None) -> None:
        """Restart a lease's time to live."""
        self.leases.renew(lease, ttl)

    def release(self, lease: Lease) -> None:
        """Release one lease."""
        self.leases.release(lease)

    def release_owner(self, owner: Owner) -> list[str]:
        """Release every lease of an owner (its peer disconnected)."""
        return self.leases.release_owner(owner)

    def guarded(self, name: str, owner: Owner | None) -> Deferred[GuardedDevice]:
        """
        The device, wrapped so that every mutating call first checks that no
        other owner holds a lease on it.

        @param owner: who calls; C{None} for a caller holding no lease.
        @return: a L{Deferred} firing with a L{GuardedDevice}, or failing
            with L{UnknownDevice}.
        """
        try:
            return succeed(GuardedDevice(self, self.lookup(name), owner))
        except UnknownDevice:
            return fail()


def _kind_of(device: Any) -> str:
    if IActuator.providedBy(device):
        return "actuator"
    from twisted_lab.interfaces import IDetector

    return "detector" if IDetector.providedBy(device) else "device"


class GuardedDevice:
    """
    A device seen by one owner: reads pass through, and each mutating call
    (C{set}, a mutating C{call}, C{move_abs}, C{move_rel}, C{move_home}) fails
    with L{twisted_lab.errors.LeaseConflict} while another owner holds a lease
    on the device or on the sub-resource (C{device/parameter},
    C{device/action}).  C{stop} is never refused: anyone may stop a motion.
    A device that acts on other devices (an adapter) lists their resources
    in an optional C{covers} attribute; those are checked too.

    It provides the same interfaces as the device it wraps.
    """

    def __init__(self, registry: DeviceRegistry, device: Any, owner: Owner | None) -> None:
        self._registry = registry
        self.device = device
        self.owner = owner
        directlyProvides(self, providedBy(device))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.device, name)

    def _check(self, *resources: str) -> None:
        self._registry.leases.check(self.owner, resources)

    def _guard(self, sub: str | None, method: Callable[..., Deferred[Any]],
               *args: Any, **kwargs: Any) -> Deferred[Any]:
        name = self.device.name
        try:
            self._check(f"{name}/{sub}" if sub else name, *getattr(self.device, "covers", ()))
        except LabError:
            return fail()
        result: Deferred[Any] = method(*args, **kwargs)
        return result

    def set(self, name: str, value: Any) -> Deferred[Any]:
        """Write a parameter, after the lease check."""
        return self._guard(name, self.device.set, name, value)

    def call(self, action: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run an action; mutating actions are lease-checked."""
        d: Deferred[Any] = self.device.describe()

        def run(description: Any) -> Deferred[Any]:
            spec = description.actions.get(action)
            if spec is not None and not spec.mutating:
                result: Deferred[Any] = self.device.call(action, *args, **kwargs)
                return result
            return self._guard(action, self.device.call, action, *args, **kwargs)

        return d.addCallback(run)

    def move_abs(self, position: float) -> Deferred[Any]:
        """Move, after the lease check."""
        return self._guard("position", self.device.move_abs, position)

    def move_rel(self, step: float) -> Deferred[Any]:
        """Move, after the lease check."""
        return self._guard("position", self.device.move_rel, step)

    def move_home(self) -> Deferred[Any]:
        """Move home, after the lease check."""
        return self._guard("position", self.device.move_home)
