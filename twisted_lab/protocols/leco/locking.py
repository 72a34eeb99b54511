# -*- test-case-name: tests.test_bridge_locks -*-
"""
pyleco's locking actor convention on our LECO actors, mapped to registry leases.

pyleco 0.6 (C{pyleco.actors.locking_actor.LockingActor}) offers three methods:

  - C{lock(resource=None) -> bool}: lock the device (C{None}) or one of its
    resources for the requesting Component; C{False} when someone else holds it;
  - C{unlock(resource=None)}: give it back; only the locker may (anyone else
    is silently ignored, as in pyleco);
  - C{force_unlock(resource=None)}: remove the lock whoever holds it.

Here a lock is a lease in the registry owned by C{Owner("leco", <caller full
name>)}, so it holds against every protocol (PLESTY writes, PyMoDAQ moves,
other LECO callers), and leases taken through other protocols make C{lock}
answer C{False}.  Resource C{None} is the device (C{"stage"}); a resource
C{"position"} is C{"stage/position"} (a parameter or action name; C{position}
covers the moves).

Differences from pyleco, on purpose:

  - C{lock} takes an optional C{ttl} (seconds; an extension): the lock expires
    unless taken again (C{lock} by the holder renews it) within C{ttl};
  - C{force_unlock} breaks LECO locks only; a lease held through another
    protocol is refused with a C{LeaseConflict} error naming its holder;
  - reads are never refused (our contract: only mutating calls are guarded);
  - when a locker is gone (its Coordinator answers "receiver unknown" or
    "node unknown" to a C{pong}, checked every C{watch_interval} seconds while
    locks granted here exist), all its LECO leases are released.  A locker
    that stays unreachable without the Coordinator saying so (a dead node
    that never signed out) keeps its lock until its C{ttl} expires.
"""
from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_lab.errors import InvalidValue, LabError, LeaseConflict
from twisted_lab.leases import Lease, Owner
from twisted_lab.protocols.leco.rpc import NODE_UNKNOWN, RECEIVER_UNKNOWN
from twisted_lab.registry import DeviceRegistry

__all__ = ["LockMethods", "register_lock_methods", "LOCK_METHODS"]

#: The methods offered (pyleco's C{LockingActorProtocol}).
LOCK_METHODS = ("lock", "unlock", "force_unlock")
_GONE = (RECEIVER_UNKNOWN, NODE_UNKNOWN)


def _params(params: Any, method: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if params is None:
        return {}
    if isinstance(params, list):
        if len(params) > len(allowed):
            raise InvalidValue(f"{method}() takes at most {len(allowed)} arguments, "
                               f"{len(params)} given")
        return dict(zip(allowed, params))
    if isinstance(params, dict):
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise InvalidValue(f"{method}() got unexpected argument(s) {', '.join(unknown)}")
        return params
    raise InvalidValue(f"{method}() needs named or positional parameters")


class LockMethods:
    """
    The C{lock}/C{unlock}/C{force_unlock} methods of one actor.

    @param component: the LECO L{Component} (C{caller}, C{ask}, C{reactor}).
    @param registry: holds the leases.
    @param device_name: the registry name of the exported device.
    @param watch_interval: seconds between checks that lockers still exist;
        C{None} to never check (then only C{ttl} frees a vanished locker's lock).
    @param default_ttl: C{ttl} of a C{lock} that gives none (C{None}: never
        expires, as in pyleco).
    """

    log = Logger()

    def __init__(self, component: Any, registry: DeviceRegistry, device_name: str,
                 watch_interval: float | None = 5.0, default_ttl: float | None = None) -> None:
        self.component = component
        self.registry = registry
        self.device_name = device_name
        self.watch_interval = watch_interval
        self.default_ttl = default_ttl
        self.granted: dict[tuple[Owner, str], Lease] = {}
        self._watch: LoopingCall | None = None
        self._checking: Deferred[Any] | None = None

    # -- helpers -------------------------------------------------------------------

    def resource(self, name: Any) -> str:
        """The registry resource for pyleco's C{resource} argument."""
        if name is None or name == "":
            return self.device_name
        if not isinstance(name, str):
            raise InvalidValue(f"resource must be a string or null, got {name!r}")
        return f"{self.device_name}/{name}"

    def _caller(self) -> Owner:
        caller = getattr(self.component, "caller", None)
        if isinstance(caller, bytes):
            caller = caller.decode("utf-8", "replace")
        if not caller:
            raise InvalidValue("lock methods need a requesting Component")
        return Owner("leco", str(caller))

    def _live(self) -> list[Lease]:
        live = self.registry.leases.leases()
        for key, lease in list(self.granted.items()):
            if lease not in live:
                del self.granted[key]
        return list(self.granted.values())

    # -- RPC methods ---------------------------------------------------------------

    def lock(self, params: Any, frames: list[bytes]) -> bool:
        """C{lock(resource=None, ttl=None) -> bool}."""
        args = _params(params, "lock", ("resource", "ttl"))
        resource = self.resource(args.get("resource"))
        ttl = args.get("ttl", self.default_ttl)
        if ttl is not None and (not isinstance(ttl, (int, float)) or isinstance(ttl, bool)
                                or ttl <= 0):
            raise InvalidValue(f"lock ttl must be a positive number, got {ttl!r}")
        owner = self._caller()
        self._live()
        held = self.granted.get((owner, resource))
        if held is not None:
            self.registry.renew(held, ttl)
            return True
        try:
            lease = self.registry.acquire(owner, [resource], ttl)
        except LeaseConflict as e:
            self.log.warn("{owner} may not lock {resource}: {held} is locked by {holder}",
                          owner=str(owner), resource=resource, held=e.resource, holder=e.holder)
            return False
        self.granted[(owner, resource)] = lease
        self._start_watch()
        return True

    def unlock(self, params: Any, frames: list[bytes]) -> None:
        """C{unlock(resource=None)}: only the locker's lock is removed."""
        resource = self.resource(_params(params, "unlock", ("resource",)).get("resource"))
        owner = self._caller()
        self._live()
        lease = self.granted.pop((owner, resource), None)
        if lease is not None:
            self.registry.release(lease)
            return
        holder = self.registry.leases.holder(resource)
        if holder is not None and holder != owner:
            self.log.warn("{owner} may not unlock {resource}, locked by {holder}",
                          owner=str(owner), resource=resource, holder=str(holder))

    def force_unlock(self, params: Any, frames: list[bytes]) -> None:
        """C{force_unlock(resource=None)}: break any LECO lock on exactly C{resource}."""
        resource = self.resource(_params(params, "force_unlock", ("resource",)).get("resource"))
        caller = self._caller()
        for lease in self.registry.leases.leases():
            if resource not in lease.resources:
                continue
            if lease.owner.protocol != "leco":
                raise LeaseConflict(resource, str(lease.owner))
        for lease in self.registry.leases.leases():
            if resource in lease.resources:
                self.registry.release(lease)
                self.log.warn("{caller} broke the lock of {owner} on {resource}",
                              caller=str(caller), owner=str(lease.owner), resource=resource)
        self._live()

    # -- vanished lockers ------------------------------------------------------------

    def _start_watch(self) -> None:
        if self.watch_interval is None or (self._watch is not None and self._watch.running):
            return
        self._watch = LoopingCall(self.check_lockers)
        self._watch.clock = self.component.reactor
        self._watch.start(self.watch_interval, now=False).addErrback(
            lambda f: self.log.failure("watching lockers of {device} failed", f,
                                       device=self.device_name))

    def stop(self) -> None:
        """Stop watching lockers (the actor stops); locks stay in the registry."""
        if self._watch is not None and self._watch.running:
            self._watch.stop()
        self._watch = None
        if self._checking is not None:
            self._checking.cancel()

    def check_lockers(self) -> Deferred[Any] | None:
        """
        Ping every Component holding a lock granted here; release the leases
        of those the Coordinator reports unknown.  Stops watching when no
        lock is left.
        """
        owners = sorted({lease.owner for lease in self._live()})
        if not owners:
            self.stop()
            return None
        if self._checking is not None:
            return None

        async def check() -> None:
            for owner in owners:
                try:
                    await self.component.ask(owner.peer, "pong",
                                             timeout=min(self.watch_interval or 2.0, 2.0))
                except LabError as e:
                    if getattr(e, "rpc_code", None) in _GONE:
                        freed = self.registry.release_owner(owner)
                        self.log.info("{owner} is gone: released its locks {resources}",
                                      owner=str(owner), resources=freed)
                        self._live()

        d = Deferred.fromCoroutine(check())
        self._checking = d

        def done(result: Any) -> None:
            self._checking = None

        d.addErrback(lambda f: None if f.check(Exception) else f)
        d.addBoth(done)
        return d

    def register(self) -> None:
        """Offer L{LOCK_METHODS} on the component; stop watching when it stops."""
        self.component.register_method(
            "lock", self.lock, "Lock the device (resource=null) or one of its resources: "
            "resource, ttl (s, optional) -> bool.")
        self.component.register_method(
            "unlock", self.unlock, "Unlock what the requester locked: resource.")
        self.component.register_method(
            "force_unlock", self.force_unlock, "Break a LECO lock on a resource: resource.")
        stop_service = getattr(self.component, "stopService", None)
        if stop_service is not None:
            def stopping() -> Any:
                self.stop()
                return stop_service()
            self.component.stopService = stopping


def register_lock_methods(component: Any, registry: DeviceRegistry, device_name: str,
                          watch_interval: float | None = 5.0,
                          default_ttl: float | None = None) -> LockMethods:
    """
    Offer pyleco's locking methods (C{lock}, C{unlock}, C{force_unlock}) on a
    LECO component exporting C{device_name}; locks are registry leases owned by
    C{Owner("leco", <caller full name>)}.

    @return: the L{LockMethods} (its C{granted} leases, C{watch_interval}, C{stop}).
    """
    methods = LockMethods(component, registry, device_name, watch_interval, default_ttl)
    methods.register()
    return methods
