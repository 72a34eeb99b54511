# -*- test-case-name: tests.test_leco_coordinator -*-
"""
Our Coordinator with our Components over real loopback sockets: sign-in,
routing, errors, expiry, own methods, federation and bad input.
"""
from __future__ import annotations

import errno
import json
from typing import Any

import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from twisted_lab.errors import DeviceOffline, LabError
from twisted_lab.protocols.leco.component import Component
from twisted_lab.protocols.leco.coordinator import (ANOTHER_COORDINATOR, CoordinatorService,
                                                    advertised_address)
from twisted_lab.protocols.leco.message import conversation_id
from twisted_lab.protocols.leco.rpc import encode_request
from twisted_lab.protocols.zmqutil import open_connection


def sleep(seconds: float) -> Deferred[None]:
    """Wait on the real reactor."""
    return deferLater(reactor, seconds, lambda: None)


class RawDealer:
    """A bare DEALER that records what it receives (for malformed input)."""

    def __init__(self, address: str) -> None:
        self.received: list[list[bytes]] = []
        self.socket = open_connection(reactor, zmq.DEALER, self.received.append,
                                      connect=address)

    def send(self, frames: list[bytes]) -> None:
        self.socket.send(frames)

    async def next(self, timeout: float = 2.0) -> list[bytes]:
        waited = 0.0
        while not self.received:
            await sleep(0.01)
            waited += 0.01
            if waited > timeout:
                raise AssertionError("no message received")
        return self.received.pop(0)

    def close(self) -> None:
        self.socket.close()


def request(receiver: bytes, sender: bytes, method: str, params: Any = None,
            cid: bytes | None = None) -> list[bytes]:
    """The frames of a request."""
    return [b"\x00", receiver, sender, (cid or conversation_id()) + b"\x00\x00\x00\x01",
            encode_request(1, method, params)]


class CoordinatorMixin:
    """Starts a Coordinator and Components, cleaning everything up."""

    def start_coordinator(self, namespace: str = "N1", **kwargs: Any) -> CoordinatorService:
        coordinator = CoordinatorService(namespace, "tcp://127.0.0.1:*", reactor, **kwargs)
        coordinator.startService()
        self.addCleanup(coordinator.stopService)  # type: ignore[attr-defined]
        return coordinator

    async def component(self, name: str, coordinator: CoordinatorService | str,
                        **kwargs: Any) -> Component:
        address = coordinator if isinstance(coordinator, str) else coordinator.endpoint
        component = Component(name, address, reactor, **kwargs)
        component.startService()
        self.addCleanup(component.stopService)  # type: ignore[attr-defined]
        await component.when_signed_in()
        return component

    def raw(self, coordinator: CoordinatorService) -> RawDealer:
        dealer = RawDealer(coordinator.endpoint)  # type: ignore[arg-type]
        self.addCleanup(dealer.close)  # type: ignore[attr-defined]
        return dealer


class RoutingTests(CoordinatorMixin, TestCase):
    """Sign-in, routing by name and full name, binary frames, routing errors."""

    timeout = 20

    async def test_sign_in_and_route(self) -> None:
        """Components learn the namespace; requests route by name and by full name."""
        coordinator = self.start_coordinator()
        a = await self.component("a", coordinator)
        b = await self.component("b", coordinator)
        a.register_method("add", lambda p, f: p["x"] + p["y"])
        self.assertEqual((a.full_name, a.namespace), ("N1.a", "N1"))
        self.assertEqual(await b.ask("a", "add", {"x": 1, "y": 2}), (3, []))
        self.assertEqual(await b.ask("N1.a", "add", {"x": 2, "y": 2}), (4, []))
        self.assertEqual(sorted(coordinator.local_names()), ["a", "b"])

    async def test_binary_frames_forwarded(self) -> None:
        """Any number of binary frames go through unchanged, both ways; small ones
        arrive as C{bytes}, large ones as uncopied buffers (C{zmq.Frame}s)."""
        coordinator = self.start_coordinator()
        a = await self.component("a", coordinator)
        b = await self.component("b", coordinator)
        a.register_method("echo", lambda p, f: ({"n": len(f)}, list(reversed(f))))
        big = bytes(range(256)) * 4096
        result, frames = await b.ask("a", "echo", None, [b"1", big, b""])
        self.assertEqual(result, {"n": 3})
        self.assertEqual([bytes(f) for f in frames], [b"", big, b"1"])
        self.assertIs(type(frames[0]), bytes)
        self.assertIs(type(frames[2]), bytes)

    async def test_large_json_payload(self) -> None:
        """
        A JSON payload of 64 KiB or more reaches a Component (over ZeroMQ or
        in process) and the Coordinator's own methods whole; the ROUTER
        receives it from a ZeroMQ peer uncopied, as a C{zmq.Frame}.  From a
        sender that did not sign in it is refused (-32090) as a small one is.
        """
        from twisted_lab.protocols.leco.locallink import LocalHub
        coordinator = self.start_coordinator()
        a = await self.component("a", coordinator)
        b = await self.component("b", coordinator)
        inner = Component("inner", coordinator.endpoint or "", reactor,
                          hub=coordinator.local_hub)
        inner.startService()
        self.addCleanup(inner.stopService)
        await inner.when_signed_in()
        for component in (a, inner):
            component.register_method("length", lambda p, f: len(p["text"]))
        received: list[tuple[bool, type]] = []  # (from a ZeroMQ peer, payload type)
        route = coordinator._on_router

        def recording(frames: list[Any], *args: Any) -> None:
            if len(frames) > 5 and len(frames[5]) > 65536:
                received.append((not LocalHub.is_link(frames[0]), type(frames[5])))
            route(frames, *args)

        self.patch(coordinator, "_on_router", recording)
        text = "x" * (1 << 20)
        self.assertEqual(await b.ask("a", "length", {"text": text}), (len(text), []))
        self.assertEqual(await b.ask("inner", "length", {"text": text}), (len(text), []))
        result, _ = await b.ask("COORDINATOR", "send_local_components", {"pad": text})
        self.assertEqual(sorted(result), ["a", "b", "inner"])  # its params are not used
        raw = self.raw(coordinator)
        raw.send(request(b"a", b"stranger", "length", {"text": text}))
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4])["error"]["code"], -32090)
        raw.send(request(b"COORDINATOR", b"stranger", "sign_in", {"pad": text}))
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4])["error"]["code"], -32090)
        self.assertIn((True, zmq.Frame), received)  # the raw peer's, at least
        self.assertEqual({t for zmq_peer, t in received if zmq_peer}, {zmq.Frame})
        self.assertEqual({t for zmq_peer, t in received if not zmq_peer} - {bytes}, set())

    async def test_unknown_receiver_and_node(self) -> None:
        """-32093 for an unknown name, -32092 for an unknown namespace, as DeviceOffline."""
        coordinator = self.start_coordinator()
        b = await self.component("b", coordinator)
        e = await self.assertFailure(b.ask("ghost", "x"), DeviceOffline)
        self.assertEqual((e.rpc_code, e.rpc_data), (-32093, "ghost"))
        e = await self.assertFailure(b.ask("N9.ghost", "x"), DeviceOffline)
        self.assertEqual((e.rpc_code, e.rpc_data), (-32092, "N9"))

    async def test_own_methods(self) -> None:
        """The Coordinator's own methods answer like pyleco's."""
        coordinator = self.start_coordinator()
        b = await self.component("b", coordinator)
        self.assertEqual(await b.ask("COORDINATOR", "send_local_components"), (["b"], []))
        self.assertEqual(await b.ask("N1.COORDINATOR", "pong"), (None, []))
        nodes, _ = await b.ask("COORDINATOR", "send_nodes")
        self.assertEqual(list(nodes), ["N1"])
        self.assertEqual(await b.ask("COORDINATOR", "send_global_components"),
                         ({"N1": ["b"]}, []))
        discover, _ = await b.ask("COORDINATOR", "rpc.discover")
        self.assertEqual(discover["info"]["title"], "N1.COORDINATOR")

    async def test_sign_out(self) -> None:
        """Stopping a Component signs it out."""
        coordinator = self.start_coordinator()
        a = await self.component("a", coordinator)
        await a.stopService()
        self.assertEqual(coordinator.local_names(), [])


class BadInputTests(CoordinatorMixin, TestCase):
    """Malformed input gets a LECO error reply or a logged drop; others keep working."""

    timeout = 20

    async def setUp_pair(self) -> tuple[CoordinatorService, Component, Component, RawDealer]:
        coordinator = self.start_coordinator()
        a = await self.component("a", coordinator)
        b = await self.component("b", coordinator)
        a.register_method("add", lambda p, f: p["x"] + p["y"])
        return coordinator, a, b, self.raw(coordinator)

    async def still_works(self, b: Component) -> None:
        self.assertEqual(await b.ask("a", "add", {"x": 1, "y": 1}), (2, []))

    async def test_not_signed_in(self) -> None:
        """A stranger gets -32090 with the same conversation id."""
        _, _, b, raw = await self.setUp_pair()
        cid = conversation_id()
        raw.send(request(b"a", b"stranger", "add", {"x": 1, "y": 1}, cid))
        frames = await raw.next()
        self.assertEqual(frames[1:3], [b"stranger", b"N1.COORDINATOR"])
        self.assertEqual(frames[3][:16], cid)
        self.assertEqual(json.loads(frames[4])["error"]["code"], -32090)
        await self.still_works(b)

    async def test_name_conflict(self) -> None:
        """A second connection signing in as "a" gets -32091; "a" keeps its name."""
        coordinator, _, b, raw = await self.setUp_pair()
        raw.send(request(b"COORDINATOR", b"a", "sign_in"))
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4]),
                         {"id": None, "error": {"code": -32091,
                                                "message": "The name is already taken."},
                          "jsonrpc": "2.0"})
        await self.still_works(b)

    async def test_component_name_conflict(self) -> None:
        """A Component whose name is taken keeps retrying and never steals it."""
        coordinator, _, b, _ = await self.setUp_pair()
        dup = Component("a", coordinator.endpoint, reactor, retry_interval=0.1)
        dup.startService()
        self.addCleanup(dup.stopService)
        await sleep(0.3)
        self.assertFalse(dup.signed_in)
        await self.still_works(b)

    async def test_malformed_frames(self) -> None:
        """Wrong version, short header, too few frames: error reply or drop, nothing else."""
        _, _, b, raw = await self.setUp_pair()
        cid = conversation_id()
        raw.send([b"\x01", b"a", b"x", cid + b"\x00\x00\x00\x01", b"{}"])
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4])["error"]["code"], -32600)
        self.assertEqual(frames[3][:16], cid)
        raw.send([b"\x00", b"a", b"x", b"short", b"{}"])
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4])["error"]["code"], -32600)
        raw.send([b"\x00", b"a"])  # nothing to answer to: dropped and logged
        raw.send([b"\x00", b"a", b"", bytes(20), b"{}"])  # empty sender: dropped
        await sleep(0.1)
        self.assertEqual(raw.received, [])
        await self.still_works(b)

    async def test_invalid_json_to_coordinator(self) -> None:
        """Invalid JSON or UTF-8 to the Coordinator gets -32700."""
        _, _, b, raw = await self.setUp_pair()
        raw.send(request(b"COORDINATOR", b"raw1", "sign_in"))
        await raw.next()
        for bad in (b'{"method": broken', b'{"method":"\xff"}'):
            raw.send([b"\x00", b"COORDINATOR", b"N1.raw1", conversation_id() + b"\x00\x00\x00\x01",
                      bad])
            frames = await raw.next()
            self.assertEqual(json.loads(frames[4])["error"]["code"], -32700)
        await self.still_works(b)

    async def test_invalid_json_to_component(self) -> None:
        """A Component answers invalid JSON with -32700 and unknown methods with -32601."""
        _, _, b, raw = await self.setUp_pair()
        raw.send(request(b"COORDINATOR", b"raw1", "sign_in"))
        await raw.next()
        raw.send([b"\x00", b"a", b"N1.raw1", conversation_id() + b"\x00\x00\x00\x01",
                  b'{"method": \xff'])
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4])["error"]["code"], -32700)
        raw.send(request(b"a", b"N1.raw1", "nope"))
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4])["error"]["code"], -32601)
        raw.send(request(b"a", b"N1.raw1", "add", {"x": 1, "y": 1}) + [b"unexpected binary"])
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4])["result"], 2)
        await self.still_works(b)

    async def test_flood(self) -> None:
        """5000 requests from one peer are all answered; another peer still gets answers."""
        _, a, b, raw = await self.setUp_pair()
        raw.send(request(b"COORDINATOR", b"flood", "sign_in"))
        await raw.next()
        for i in range(5000):
            raw.send(request(b"a", b"N1.flood", "add", {"x": i, "y": 0}))
        await self.still_works(b)
        waited = 0
        while len(raw.received) < 5000 and waited < 200:
            await sleep(0.05)
            waited += 1
        self.assertEqual(len(raw.received), 5000)


class ExpiryTests(CoordinatorMixin, TestCase):
    """Silent Components are pinged, then forgotten; they sign in again by themselves."""

    timeout = 20

    async def test_expiry_and_re_sign_in(self) -> None:
        """A silent raw peer is pinged then removed; a Component re-signs in after -32090."""
        coordinator = self.start_coordinator(cleaning_interval=0.1, expiration_time=0.2)
        raw = self.raw(coordinator)
        raw.send(request(b"COORDINATOR", b"silent", "sign_in"))
        await raw.next()
        frames = await raw.next()
        self.assertEqual(json.loads(frames[4]), {"id": 0, "method": "pong", "jsonrpc": "2.0"})
        self.assertEqual(frames[1:3], [b"N1.silent", b"N1.COORDINATOR"])
        await sleep(0.8)
        self.assertNotIn("silent", coordinator.local_names())
        # a Component that never sends anything is forgotten, then comes back on -32090
        a = await self.component("a", coordinator, heartbeat_interval=100)
        a.register_method("x", lambda p, f: "ok")
        await sleep(0.8)
        b = await self.component("b", coordinator)
        self.assertEqual(await b.ask("a", "x"), ("ok", []))

    async def test_names_per_connection_and_summary(self) -> None:
        """
        One connection may sign in L{MAX_NAMES_PER_CONNECTION} names; the next
        gets an error reply (a flood of names from one socket is refused, not
        remembered).  When more than L{EXPIRED_NAMED} Components expire in one
        pass, one log line names the first few: a flood that left does not
        cost one line each (2,000 lines held the reactor 155 ms).
        """
        from twisted.logger import capturedLogs

        from twisted_lab.protocols.leco.coordinator import (EXPIRED_NAMED,
                                                            MAX_NAMES_PER_CONNECTION)
        coordinator = self.start_coordinator()
        raw = self.raw(coordinator)
        for i in range(MAX_NAMES_PER_CONNECTION + 1):
            raw.send(request(b"COORDINATOR", b"n%d" % i, "sign_in"))
        replies = [json.loads((await raw.next())[4]) for _ in range(
            MAX_NAMES_PER_CONNECTION + 1)]
        self.assertEqual([r.get("result", "error") for r in replies],
                         [None] * MAX_NAMES_PER_CONNECTION + ["error"])
        self.assertIn(str(MAX_NAMES_PER_CONNECTION), replies[-1]["error"]["data"])
        self.assertEqual(len(coordinator.local_names()), MAX_NAMES_PER_CONNECTION)
        self.assertGreater(MAX_NAMES_PER_CONNECTION, EXPIRED_NAMED)
        with capturedLogs() as events:
            coordinator.remove_expired(-1.0)
        lines = [e for e in events if "expired" in e.get("log_format", "")]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["count"], MAX_NAMES_PER_CONNECTION)
        self.assertEqual(coordinator.local_names(), [])

    async def test_coordinator_restart(self) -> None:
        """After the Coordinator restarts on the same port, Components sign in again."""
        coordinator = self.start_coordinator()
        endpoint = coordinator.endpoint
        a = await self.component("a", coordinator, heartbeat_interval=0.2)
        a.register_method("x", lambda p, f: "ok")
        await coordinator.stopService()
        # libzmq closes the old socket in its own thread: the port may still be
        # taken for a moment (as after any process restart); retry the bind.
        for attempt in range(50):
            second = CoordinatorService("N1", endpoint, reactor)
            try:
                second.startService()
                break
            except zmq.ZMQError as e:
                if e.errno != errno.EADDRINUSE or attempt == 49:
                    raise
                await sleep(0.1)
        self.addCleanup(second.stopService)
        waited = 0
        while "a" not in second.local_names() and waited < 50:
            await sleep(0.1)
            waited += 1
        self.assertIn("a", second.local_names())
        b = await self.component("b", second)
        self.assertEqual(await b.ask("a", "x"), ("ok", []))


class FederationTests(CoordinatorMixin, TestCase):
    """Two of our Coordinators link and route across."""

    timeout = 20

    async def test_route_across(self) -> None:
        """N2.z calls N1.a and back; directories are exchanged."""
        one = self.start_coordinator("N1")
        two = self.start_coordinator("N2", coordinators=[one.endpoint])
        a = await self.component("a", one)
        z = await self.component("z", two)
        a.register_method("add", lambda p, f: p["x"] + p["y"])
        z.register_method("who", lambda p, f: z.caller)
        waited = 0
        while set(one.nodes()) != {"N1", "N2"} and waited < 50:
            await sleep(0.05)
            waited += 1
        self.assertEqual(await z.ask("N1.a", "add", {"x": 5, "y": 2}), (7, []))
        self.assertEqual(await a.ask("N2.z", "who"), ("N1.a", []))
        await sleep(0.1)
        self.assertEqual(one.global_components(), {"N2": ["z"], "N1": ["a"]})
        e = await self.assertFailure(z.ask("N1.ghost", "x"), LabError)
        self.assertEqual(e.rpc_code, -32093)

    async def wait_nodes(self, coordinator: CoordinatorService, names: set[str],
                         seconds: float = 5.0) -> None:
        waited = 0.0
        while set(coordinator.nodes()) != names and waited < seconds:
            await sleep(0.05)
            waited += 0.05
        self.assertEqual(set(coordinator.nodes()), names)

    async def test_sign_in_flood_one_directory_per_turn(self) -> None:
        """
        Forty Components signing in at once cost the other Coordinator one
        directory message per reactor turn (not forty, each listing every
        name so far), and it learns every name.
        """
        one = self.start_coordinator("N1")
        two = self.start_coordinator("N2", coordinators=[one.endpoint])
        while set(one.nodes()) != {"N1", "N2"}:
            await sleep(0.05)
        await sleep(0.1)  # the directories of the sign-in itself
        link = one._nodes[b"N2"]
        directories: list[Any] = []
        real_send = link.socket.send

        def send(frames: Any) -> Any:
            if b"record_components" in frames[-1]:
                directories.append(frames[-1])
            return real_send(frames)

        self.patch(link.socket, "send", send)
        names = [f"c{i}" for i in range(40)]
        components = [Component(name, one.endpoint, reactor, hub=one.local_hub)
                      for name in names]
        for component in components:
            component.startService()
            self.addCleanup(component.stopService)
        await gatherResults([c.when_signed_in() for c in components])
        waited = 0
        while set(two.global_components().get("N1", [])) != set(names) and waited < 100:
            await sleep(0.05)
            waited += 1
        self.assertEqual(set(two.global_components()["N1"]), set(names))
        self.assertLessEqual(len(directories), 4)

    async def test_second_node_sign_in_refused(self) -> None:
        """
        A second connection signing in as a node whose Coordinator is still
        connected is refused with pyleco's "Another Coordinator is known!";
        once the first connection is gone, a newcomer is accepted.
        """
        one = self.start_coordinator("N1")
        first, second = self.raw(one), self.raw(one)
        first.send(request(b"COORDINATOR", b"N2.COORDINATOR", "coordinator_sign_in"))
        self.assertEqual(json.loads((await first.next())[4])["result"], None)
        second.send(request(b"COORDINATOR", b"N2.COORDINATOR", "coordinator_sign_in"))
        frames = await second.next()
        self.assertEqual(frames[1], b"COORDINATOR")
        error = json.loads(frames[4])["error"]
        self.assertEqual(error["data"], f"ValueError: {ANOTHER_COORDINATOR}")
        # the refused one may not speak as N2
        second.send(request(b"COORDINATOR", b"N2.COORDINATOR", "send_nodes"))
        self.assertEqual(json.loads((await second.next())[4])["error"]["code"], -32090)
        first.close()
        await sleep(0.3)  # libzmq drops the closed peer's identity
        third = self.raw(one)
        third.send(request(b"COORDINATOR", b"N2.COORDINATOR", "coordinator_sign_in"))
        self.assertEqual(json.loads((await third.next())[4])["result"], None)

    async def test_stop_while_forgotten(self) -> None:
        """
        A Coordinator that stops while the other node has already forgotten
        it is answered "not signed in"; it does not start a re-link then, and
        every socket of its link is closed (trial fails the test on any
        socket left on the reactor).
        """
        one = self.start_coordinator("N1")
        two = self.start_coordinator("N2", coordinators=[one.endpoint])
        await self.wait_nodes(one, {"N1", "N2"})
        await self.wait_nodes(two, {"N1", "N2"})
        z = await self.component("z", two)
        one.remove_expired(-1.0)  # N1 forgets N2 (and closes its own link to it)
        self.assertEqual(set(one.nodes()), {"N1"})
        # z signs out while N2 stops: N2 sends its new directory to N1, which
        # answers "not signed in" while N2 is stopping
        stopped = gatherResults([two.stopService(), z.stopService()])
        await stopped
        self.assertEqual(two.nodes(), {"N2": two.advertised})

    async def restart(self, old: CoordinatorService, **kwargs: Any) -> CoordinatorService:
        """Stop C{old} and start a new Coordinator on its namespace and port."""
        endpoint = old.endpoint
        await old.stopService()
        for attempt in range(50):
            new = CoordinatorService(old.namespace, endpoint, reactor, **kwargs)  # type: ignore
            try:
                new.startService()
                break
            except zmq.ZMQError as e:
                if e.errno != errno.EADDRINUSE or attempt == 49:
                    raise
                await sleep(0.1)
        self.addCleanup(new.stopService)
        return new

    async def test_restart_either_side(self) -> None:
        """
        N2 (configured to federate with N1) and N1 stay linked when N1
        restarts, and again when N2 restarts; calls route across each time.
        """
        fast = {"cleaning_interval": 0.1, "expiration_time": 0.3}
        one = self.start_coordinator("N1", **fast)
        two = self.start_coordinator("N2", coordinators=[f"127.0.0.1:{one.port}"], **fast)
        a = await self.component("a", one, heartbeat_interval=0.1)
        a.register_method("ping", lambda p, f: "a")
        z = await self.component("z", two, heartbeat_interval=0.1)
        z.register_method("ping", lambda p, f: "z")
        await self.wait_nodes(one, {"N1", "N2"})
        self.assertEqual(await z.ask("N1.a", "ping"), ("a", []))
        one = await self.restart(one, **fast)
        await self.wait_nodes(one, {"N1", "N2"})
        await self.wait_nodes(two, {"N1", "N2"})
        await sleep(0.5)
        self.assertEqual(await z.ask("N1.a", "ping"), ("a", []))
        self.assertEqual(await a.ask("N2.z", "ping"), ("z", []))
        two = await self.restart(two, coordinators=[f"127.0.0.1:{one.port}"], **fast)
        await self.wait_nodes(two, {"N1", "N2"})
        await self.wait_nodes(one, {"N1", "N2"})
        await sleep(0.5)
        self.assertEqual(await a.ask("N2.z", "ping"), ("z", []))
        self.assertEqual(await z.ask("N1.a", "ping"), ("a", []))


class AdvertisedAddressTests(SynchronousTestCase):
    """L{advertised_address}: what other Coordinators are told to use."""

    def test_specific(self) -> None:
        """A specific bind address is advertised as it is."""
        self.assertEqual(advertised_address("tcp://127.0.0.1:12300"), "127.0.0.1:12300")
        self.assertEqual(advertised_address("tcp://192.0.2.5:7"), "192.0.2.5:7")

    def test_all_interfaces(self) -> None:
        """Bound to every interface, the host name is advertised: never 0.0.0.0 or ::."""
        for endpoint in ("tcp://0.0.0.0:12300", "tcp://*:12300", "tcp://[::]:12300"):
            self.assertEqual(advertised_address(endpoint, None, lambda: "labpc"),
                             "labpc:12300")

    def test_configured(self) -> None:
        """A configured host takes the bound port; a configured host:port is used as is."""
        self.assertEqual(advertised_address("tcp://0.0.0.0:12300", "lab.example.org"),
                         "lab.example.org:12300")
        self.assertEqual(advertised_address("tcp://127.0.0.1:1", "gw:4000"), "gw:4000")
        self.assertEqual(advertised_address("tcp://[::]:9", "[2001:db8::1]"),
                         "[2001:db8::1]:9")
