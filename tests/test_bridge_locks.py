# -*- test-case-name: tests.test_bridge_locks -*-
"""
One lock, everywhere: a lease taken through one protocol refuses mutating
calls made through every other, over real loopback sockets, with our own
protocol clients in one process.

Takers: PLESTY C{connect} with C{resources}, LECO C{lock} (pyleco's locking
actor convention, L{twisted_lab.protocols.leco.locking}), the registry lease
API.  Hitters: PLESTY C{write}/C{call}, LECO C{set_parameters}/C{call_action},
the PyMoDAQ 5 LECO method C{move_abs}, and a PyMoDAQ main computer sending
C{move_abs} to our PyMoDAQ 4 client role (our own server role plays the main
computer).  LA4 devices are imported, so LA4 only meets locks through these.

For every taker × hitter pair one test runs each way the taker's lock ends
(release, the holder's disconnect or sign-out, expiry): the hit fails with a
message naming the holder and leaves the device alone, then succeeds once the
lock is gone.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.test_leco_coordinator import CoordinatorMixin
from twisted_lab.description import Parameter
from twisted_lab.devices.base import BaseActuator
from twisted_lab.errors import LabError, LeaseConflict
from twisted_lab.leases import Owner
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.protocols.plesty.imports import PlestyClient, ResourceRefused
from twisted_lab.protocols.plesty.export import PlestyServerService
from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory, PyMoDAQExportService
from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
from twisted_lab.registry import DeviceRegistry
from tests.polling import until


def sleep(seconds: float) -> Deferred[None]:
    """Wait on the real reactor."""
    return deferLater(reactor, seconds, lambda: None)


class Stage(BaseActuator):
    """An instant actuator with one writable parameter, C{speed}."""

    def __init__(self, name: str = "stage") -> None:
        self.current = 0.0
        self.moves: list[float] = []
        super().__init__(name, "mm", [Parameter("speed", "float", default=1.0)])

    def _move_abs(self, position: float) -> float:
        self.moves.append(position)
        self.current = position
        return position

    def _stop(self) -> float:
        return self.current

    def _position(self) -> float:
        return self.current


class Lab(CoordinatorMixin):
    """One registry served on PLESTY, LECO and the PyMoDAQ client role."""

    stage: Stage
    registry: DeviceRegistry

    async def start_lab(self) -> None:
        self.registry = DeviceRegistry(reactor)
        self.stage = Stage()
        self.registry.register(self.stage)
        self.addCleanup(self.registry.leases.clear)  # type: ignore[attr-defined]
        self.value = 10.0
        # LECO: our Coordinator and the stage as an actor
        self.coordinator = self.start_coordinator()
        self.actor = DeviceActor(self.registry, "stage", self.coordinator.endpoint, reactor)
        self.actor.startService()
        self.addCleanup(self.actor.stopService)  # type: ignore[attr-defined]
        await self.actor.when_signed_in()
        self.actor.locking.watch_interval = 0.1
        self.leco_hitter = await self.component("hitter", self.coordinator)
        # PLESTY: our server for the stage
        self.plesty = PlestyServerService(self.registry, "stage", "tcp://127.0.0.1:*", reactor,
                                          lease_ttl=None)
        self.plesty.startService()
        self.addCleanup(self.plesty.stopService)  # type: ignore[attr-defined]
        self.plesty_hitter = await self.plesty_client("hitter")
        # PyMoDAQ: a main computer (our server role, its own registry) and our
        # client role exporting the stage to it as an ACTUATOR
        self.main = DeviceRegistry(reactor)
        server = PyMoDAQServerFactory(self.main, reactor, call_timeout=0.5,
                                      rules=[{"name": "main_stage"}])
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server)
        self.addCleanup(port.stopListening)  # type: ignore[attr-defined]
        self.addCleanup(server.stop)  # type: ignore[attr-defined]
        export = PyMoDAQExportService(
            reactor, f"tcp:127.0.0.1:{port.getHost().port}",
            PyMoDAQClientFactory(self.registry, "stage", "ACTUATOR"))
        export.startService()
        self.addCleanup(export.stopService)  # type: ignore[attr-defined]
        self.main_stage = await self.main.when_registered("main_stage")
        await until(lambda: self.main_stage.online)

    async def plesty_client(self, client_id: str, resources: Any = None) -> PlestyClient:
        client = PlestyClient(reactor, self.plesty.address, client_id=client_id,
                              resources=resources, timeout=2.0)
        self.addCleanup(client.close)  # type: ignore[attr-defined]
        await client.connect()
        return client

    # -- hitters: each makes one mutating call; None or the refusal text --------

    def next_value(self) -> float:
        self.value += 1.0
        return self.value

    async def _refusal(self, call: Awaitable[Any]) -> str | None:
        try:
            await call
        except LabError as e:
            return str(e)
        return None

    async def hit_plesty_write(self) -> str | None:
        value = self.next_value()
        refused = await self._refusal(self.plesty_hitter.write("speed", value))
        self.assertEqual(await self.stage.get("speed") == value,  # type: ignore[attr-defined]
                         refused is None)
        return refused

    async def _moved(self, value: float, refused: str | None) -> str | None:
        self.assertEqual(self.stage.current == value, refused is None)  # type: ignore[attr-defined]
        return refused

    async def hit_plesty_call(self) -> str | None:
        value = self.next_value()
        return await self._moved(value, await self._refusal(
            self.plesty_hitter.call("move_abs", value)))

    async def hit_leco_set(self) -> str | None:
        value = self.next_value()
        refused = await self._refusal(self.leco_hitter.ask(
            "stage", "set_parameters", {"parameters": {"speed": value}}))
        self.assertEqual(await self.stage.get("speed") == value,  # type: ignore[attr-defined]
                         refused is None)
        return refused

    async def hit_leco_call(self) -> str | None:
        value = self.next_value()
        return await self._moved(value, await self._refusal(self.leco_hitter.ask(
            "stage", "call_action", {"action": "move_abs", "args": [value]})))

    async def hit_leco_pymodaq_move_abs(self) -> str | None:
        value = self.next_value()
        refused = await self._refusal(self.leco_hitter.ask("stage", "move_abs",
                                                           {"position": value}))
        if refused is None:
            await until(lambda: self.stage.current == value)
        return await self._moved(value, refused)

    async def hit_pymodaq4_move_abs(self) -> str | None:
        """
        The main computer's C{move_abs}: on a lease conflict our client role
        does not move; it sends C{Info} (path C{stage.move_abs}, text
        C{"LeaseConflict: …locked by <holder>"}, stored by the main side as
        C{info.stage.move_abs}) and then C{move_done} at the unchanged position.
        """
        value = self.next_value()
        reached = await self.main_stage.move_abs(value)
        if reached != value:
            info = await self.main_stage.get("info.stage.move_abs")
            self.assertTrue(info.startswith("LeaseConflict: "), info)  # type: ignore[attr-defined]
            return await self._moved(value, info)
        return await self._moved(value, None)

    # -- takers: take(ttl) → holder text; free(how) ------------------------------


TAKER_WAYS = {
    "plesty": ("expiry", "disconnect"),
    "leco": ("release", "expiry", "sign_out"),
    "api": ("release", "expiry", "disconnect"),
}
HITTERS = ("plesty_write", "plesty_call", "leco_set", "leco_call", "leco_pymodaq_move_abs",
           "pymodaq4_move_abs")
TTL = 0.3


class CrossProtocolLockTests(Lab, TestCase):
    """Every taker × hitter pair: refused naming the holder, freed every way."""

    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override]
        await self.start_lab()
        self.n = 0

    async def take(self, taker: str, way: str) -> tuple[str, Callable[[], Awaitable[Any]]]:
        """Lock the stage through C{taker}; return the holder text and the freeing call."""
        self.n += 1
        ttl = TTL if way == "expiry" else None
        if taker == "plesty":
            self.plesty.handler.lease_ttl = ttl
            locker = await self.plesty_client(f"locker{self.n}", ["stage"])
            free = {"disconnect": locker.disconnect,
                    "expiry": lambda: sleep(TTL * 2)}[way]
            return f"plesty:locker{self.n}", free
        if taker == "leco":
            locker = await self.component(f"locker{self.n}", self.coordinator)
            params: dict[str, Any] = {"ttl": ttl} if ttl else {}
            self.assertEqual(await locker.ask("stage", "lock", params), (True, []))
            owner = Owner("leco", locker.full_name)

            async def sign_out() -> None:
                await locker.stopService()
                await until(lambda: not self.registry.leases.leases(owner))

            free = {"release": lambda: locker.ask("stage", "unlock", {}),
                    "expiry": lambda: sleep(TTL * 2), "sign_out": sign_out}[way]
            return f"leco:{locker.full_name}", free
        owner = Owner("api", f"tester{self.n}")
        lease = self.registry.acquire(owner, ["stage"], ttl)

        async def release_owner() -> None:
            self.registry.release_owner(owner)

        async def release() -> None:
            self.registry.release(lease)

        free = {"release": release, "disconnect": release_owner,
                "expiry": lambda: sleep(TTL * 2)}[way]
        return str(owner), free

    async def check_pair(self, taker: str, hitter: str) -> None:
        hit = getattr(self, f"hit_{hitter}")
        self.assertIsNone(await hit(), "unlocked at first")
        for way in TAKER_WAYS[taker]:
            holder, free = await self.take(taker, way)
            refused = await hit()
            self.assertIsNotNone(refused, f"{hitter} passed a {taker} lock")
            self.assertIn(f"locked by {holder}", refused)
            await free()
            self.assertIsNone(await hit(), f"{taker} lock not freed by {way}")
            self.assertEqual(self.registry.leases.leases(), [])


def _pair_test(taker: str, hitter: str) -> Any:
    async def test(self: CrossProtocolLockTests) -> None:
        await self.check_pair(taker, hitter)
    ways = ", ".join(TAKER_WAYS[taker])
    test.__doc__ = (f"A {taker} lock refuses {hitter} naming the holder, and {ways} "
                    f"each free it.")
    test.__name__ = f"test_{taker}_lock_vs_{hitter}"
    return test


for _taker in TAKER_WAYS:
    for _hitter in HITTERS:
        _t = _pair_test(_taker, _hitter)
        setattr(CrossProtocolLockTests, _t.__name__, _t)
del _t, _taker, _hitter


class LecoLockingTests(Lab, TestCase):
    """pyleco's locking convention (lock/unlock/force_unlock) on our actors."""

    timeout = 30

    async def setUp(self) -> None:  # type: ignore[override]
        await self.start_lab()

    async def test_takers_refuse_each_other(self) -> None:
        """LECO lock answers False under a PLESTY lock; PLESTY connect is refused
        under a LECO lock, naming the holder."""
        plesty = await self.plesty_client("first", ["stage"])
        locker = await self.component("locker", self.coordinator)
        self.assertEqual(await locker.ask("stage", "lock", {}), (False, []))
        await plesty.disconnect()
        self.assertEqual(await locker.ask("stage", "lock", {}), (True, []))
        e = await self.assertFailure(
            Deferred.fromCoroutine(self.plesty_client("second", ["stage"])), ResourceRefused)
        self.assertIn("leco:N1.locker", str(e))

    async def test_holder_passes_its_own_lock(self) -> None:
        """The locker's own set_parameters and move go through; lock again renews."""
        locker = await self.component("locker", self.coordinator)
        self.assertEqual(await locker.ask("stage", "lock", [None, 60]), (True, []))
        self.assertEqual(await locker.ask("stage", "lock", {"ttl": 60}), (True, []))
        self.assertEqual(len(self.registry.leases.leases()), 1)
        await locker.ask("stage", "set_parameters", {"parameters": {"speed": 3.0}})
        await locker.ask("stage", "call_action", {"action": "move_abs", "args": [4.0]})
        self.assertEqual((await self.stage.get("speed"), self.stage.current), (3.0, 4.0))

    async def test_resource_lock(self) -> None:
        """A lock on resource C{position} refuses moves but not writes of C{speed}."""
        locker = await self.component("locker", self.coordinator)
        self.assertEqual(await locker.ask("stage", "lock", {"resource": "position"}),
                         (True, []))
        self.assertIsNone(await self.hit_plesty_write())
        self.assertIn("locked by leco:N1.locker", await self.hit_pymodaq4_move_abs() or "")
        self.assertIn("'stage/position' is locked by leco:N1.locker",
                      await self.hit_leco_pymodaq_move_abs() or "")

    async def test_force_unlock_needs_admin(self) -> None:
        """force_unlock from an C{operate} caller (the default) is refused; the lock holds."""
        from twisted_lab.errors import AccessDenied
        locker = await self.component("locker", self.coordinator)
        await locker.ask("stage", "lock", {})
        e = await self.assertFailure(self.leco_hitter.ask("stage", "force_unlock", {}),
                                     AccessDenied)
        self.assertIn("needs the admin role", str(e))
        self.assertIsNotNone(await self.hit_leco_set())

    async def test_unlock_by_other_is_ignored_force_unlock_breaks(self) -> None:
        """unlock by another Component leaves the lock (as pyleco); force_unlock by an
        admin breaks it."""
        from twisted_lab.access import Role
        self.actor.default_role = Role.ADMIN  # force_unlock needs admin: granted explicitly
        locker = await self.component("locker", self.coordinator)
        await locker.ask("stage", "lock", {})
        await self.leco_hitter.ask("stage", "unlock", {})
        self.assertIsNotNone(await self.hit_leco_set())
        await self.leco_hitter.ask("stage", "force_unlock", {})
        self.assertIsNone(await self.hit_leco_set())

    async def test_force_unlock_refuses_other_protocols(self) -> None:
        """force_unlock (by an admin) does not break a PLESTY lease: LeaseConflict naming
        it (-32050)."""
        from twisted_lab.access import Role
        self.actor.default_role = Role.ADMIN  # force_unlock needs admin: granted explicitly
        await self.plesty_client("holder", ["stage"])
        e = await self.assertFailure(self.leco_hitter.ask("stage", "force_unlock", {}),
                                     LeaseConflict)
        self.assertIn("plesty:holder", str(e))
        self.assertEqual(e.rpc_code, -32050)

    async def test_bad_arguments(self) -> None:
        """Bad lock arguments are answered with an error, the actor keeps serving."""
        from twisted_lab.errors import InvalidValue
        await self.assertFailure(self.leco_hitter.ask("stage", "lock", {"ttl": -1}),
                                 InvalidValue)
        await self.assertFailure(self.leco_hitter.ask("stage", "lock", {"resource": 3}),
                                 InvalidValue)
        await self.assertFailure(self.leco_hitter.ask("stage", "lock", {"bogus": 1}),
                                 InvalidValue)
        self.assertEqual(await self.leco_hitter.ask("stage", "lock", {}), (True, []))

    async def test_pymodaq4_wire(self) -> None:
        """
        What a PyMoDAQ main computer sees when its move_abs hits a lock: no
        motion; an C{Info} naming the holder (our server role stores it as
        C{info.stage.move_abs}), then C{move_done} at the unchanged position,
        so the main side's reply matching stays in step and later moves work.
        """
        self.registry.acquire(Owner("api", "holder"), ["stage"])
        before = self.stage.current
        self.assertEqual(await self.main_stage.move_abs(5.0), before)
        self.assertEqual(self.stage.moves, [])
        self.assertEqual(await self.main_stage.get("info.stage.move_abs"),
                         "LeaseConflict: resource 'stage/position' is locked by api:holder")
        self.registry.release_owner(Owner("api", "holder"))
        for position in (6.0, 7.0):
            self.assertEqual(await self.main_stage.move_abs(position), position)
        self.assertEqual(self.stage.moves, [6.0, 7.0])
