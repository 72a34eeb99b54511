# -*- test-case-name: tests.test_leco_locallink -*-
"""
In-process links between our Coordinator and the Components of its process.

The hub on its own (queueing, order, no re-entrancy, drops), then the
Coordinator's routing, bad-input and expiry tests run again with
Components on the hub, alone and mixed with Components over ZeroMQ, and
the C{[leco]} section's wiring.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.test_leco_coordinator import (BadInputTests, CoordinatorMixin, ExpiryTests,
                                         RoutingTests, sleep)
from twisted_lab.protocols.leco.component import Component
from twisted_lab.protocols.leco.coordinator import CoordinatorService
from twisted_lab.protocols.leco.locallink import LINK_PREFIX, LocalHub, LocalLink
from twisted_lab.protocols.leco.plugin import OPTIONS, plugin
from twisted_lab.registry import DeviceRegistry


class HubTests(SynchronousTestCase):
    """The hub alone, on a fake clock, with a recording 'Coordinator'."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.received: list[list[Any]] = []
        self.hub = LocalHub(self.clock, self.received.append)
        self.hub.open = True

    def test_send_is_not_delivered_inside_the_call(self) -> None:
        """A link's message reaches the Coordinator from the reactor, not inside send()."""
        link = self.hub.connect(lambda frames: None)
        self.assertTrue(link.send([b"\x00", b"x"]))
        self.assertEqual(self.received, [])
        self.assertEqual(self.hub.pending, 1)
        self.clock.advance(0)
        self.assertEqual(self.received, [[link.identity, b"\x00", b"x"]])
        self.assertEqual(self.hub.pending, 0)

    def test_order_kept_both_ways(self) -> None:
        """Messages are delivered in the order sent, including those queued while pumping."""
        got: list[tuple[str, Any]] = []
        link: LocalLink

        def coordinator(frames: list[Any]) -> None:
            got.append(("coordinator", frames[1]))
            hub.to_link([frames[0], b"answer " + frames[1]])

        def component(frames: list[bytes]) -> None:
            got.append(("component", frames[0]))
            if frames[0] == b"answer 1":
                link.send([b"3"])

        hub = LocalHub(self.clock, coordinator)
        hub.open = True
        link = hub.connect(component)
        link.send([b"1"])
        link.send([b"2"])
        self.clock.advance(0)
        self.assertEqual(got, [("coordinator", b"1"), ("coordinator", b"2"),
                               ("component", b"answer 1"), ("component", b"answer 2"),
                               ("coordinator", b"3"), ("component", b"answer 3")])

    def test_long_local_chain_does_not_recurse(self) -> None:
        """10000 answers, each sent from inside the previous delivery, run in one flat loop."""
        rounds = {"n": 0}
        links: list[LocalLink] = []

        def coordinator(frames: list[Any]) -> None:
            # route to the other link
            other = links[1] if frames[0] == links[0].identity else links[0]
            hub.to_link([other.identity, *frames[1:]])

        def answer(index: int) -> Any:
            def received(frames: list[bytes]) -> None:
                rounds["n"] += 1
                if rounds["n"] < 10000:
                    links[index].send(frames)
            return received

        hub = LocalHub(self.clock, coordinator)
        hub.open = True
        links.extend([hub.connect(answer(0)), hub.connect(answer(1))])
        links[0].send([b"ping"])
        self.clock.advance(0)
        self.assertEqual(rounds["n"], 10000)
        self.assertEqual(hub.pending, 0)

    def test_frames_arrive_as_bytes(self) -> None:
        """Buffers (memoryview, numpy) reach a Component as bytes, as from ZeroMQ."""
        got: list[list[bytes]] = []
        link = self.hub.connect(got.append)
        array = np.arange(4, dtype="<u2")
        self.hub.to_link([link.identity, b"\x00", memoryview(b"mv"), array])
        self.clock.advance(0)
        self.assertEqual(got, [[b"\x00", b"mv", array.tobytes()]])
        self.assertTrue(all(type(f) is bytes for f in got[0]))

    def test_large_additional_frames_not_copied(self) -> None:
        """
        As a Component's DEALER receives them from ZeroMQ: an additional
        payload frame of 64 KiB or more reaches it as a read-only view of
        the buffer it was sent as (a camera frame is not copied on the
        reactor thread); the header frames and the JSON payload are
        C{bytes} whatever their size.
        """
        got: list[list[Any]] = []
        link = self.hub.connect(got.append)
        frame = np.arange(1 << 16, dtype="<f8")  # 512 KiB
        json_payload = memoryview(b"[" + b" " * (1 << 17) + b"]")
        small = np.arange(4, dtype="<u2")
        self.hub.to_link([link.identity, b"\x00", b"N1.me", b"N1.you", b"h" * 24,
                          json_payload, frame, small])
        self.clock.advance(0)
        (frames,) = got
        self.assertTrue(all(type(f) is bytes for f in frames[:5]))
        self.assertEqual(frames[4], bytes(json_payload))
        self.assertTrue(frames[5].readonly)
        received = np.frombuffer(frames[5], dtype="<f8")
        self.assertTrue(np.shares_memory(received, frame))
        np.testing.assert_array_equal(received, frame)
        self.assertEqual(frames[6], small.tobytes())

    def test_closed_link_and_closed_coordinator_drop(self) -> None:
        """Nothing goes to a closed link; nothing reaches a Coordinator not listening."""
        got: list[list[bytes]] = []
        link = self.hub.connect(got.append)
        self.hub.to_link([link.identity, b"queued before close"])
        link.close()
        link.close()  # idempotent
        self.assertFalse(link.send([b"x"]))
        self.assertFalse(self.hub.to_link([link.identity, b"after close"]))
        self.clock.advance(0)
        self.assertEqual(got, [])
        other = self.hub.connect(got.append)
        self.hub.open = False
        self.assertFalse(other.send([b"x"]))
        self.clock.advance(0)
        self.assertEqual(self.received, [])

    def test_failing_receiver_logged_rest_delivered(self) -> None:
        """An exception in one receiver is logged; the next messages still go."""
        got: list[list[bytes]] = []

        def boom(frames: list[bytes]) -> None:
            raise RuntimeError("receiver failed")

        bad = self.hub.connect(boom)
        good = self.hub.connect(got.append)
        self.hub.to_link([bad.identity, b"1"])
        self.hub.to_link([good.identity, b"2"])
        self.clock.advance(0)
        self.assertEqual(got, [[b"2"]])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_identities_never_zmq_ones(self) -> None:
        """Link identities are recognised; ZeroMQ's five-byte ones are not."""
        link = self.hub.connect(lambda frames: None)
        self.assertTrue(link.identity.startswith(LINK_PREFIX))
        self.assertTrue(LocalHub.is_link(link.identity))
        self.assertGreater(len(link.identity), 5)
        self.assertFalse(LocalHub.is_link(b"\x00\x80\x00\x00\x29"))
        self.assertFalse(LocalHub.is_link(b"custom-id"))
        self.assertNotEqual(self.hub.connect(lambda f: None).identity, link.identity)


class HubMixin(CoordinatorMixin):
    """Components given a CoordinatorService reach it through its hub."""

    def on_hub(self, name: str) -> bool:
        return True

    async def component(self, name: str, coordinator: CoordinatorService | str,
                        **kwargs: Any) -> Component:
        if isinstance(coordinator, str) or not self.on_hub(name):
            return await super().component(name, coordinator, **kwargs)
        component = Component(name, coordinator.endpoint or "", reactor,
                              hub=coordinator.local_hub, **kwargs)
        component.startService()
        self.addCleanup(component.stopService)  # type: ignore[attr-defined]
        await component.when_signed_in()
        self.assertIsInstance(component._socket, LocalLink)  # type: ignore[attr-defined]
        return component


class MixedMixin(HubMixin):
    """Component "a" is on the hub, the others over ZeroMQ."""

    def on_hub(self, name: str) -> bool:
        return name == "a"


class HubRoutingTests(HubMixin, RoutingTests):
    """Routing with every Component on the hub."""


class MixedRoutingTests(MixedMixin, RoutingTests):
    """Routing between a hub Component and ZeroMQ Components."""


class HubBadInputTests(HubMixin, BadInputTests):
    """Bad input from ZeroMQ peers while the Components are on the hub."""


class MixedBadInputTests(MixedMixin, BadInputTests):
    """Bad input with a hub Component and ZeroMQ Components."""


class HubExpiryTests(HubMixin, ExpiryTests):
    """Expiry and restarts with Components on the hub."""

    async def test_coordinator_restart(self) -> None:
        """The same Coordinator stopped and started again: hub Components sign in again."""
        coordinator = self.start_coordinator()
        a = await self.component("a", coordinator, heartbeat_interval=0.2)
        a.register_method("x", lambda p, f: "ok")
        await coordinator.stopService()
        self.assertFalse(coordinator.local_hub.open)
        coordinator.address = coordinator.endpoint  # type: ignore[assignment]
        for attempt in range(50):
            try:
                coordinator.startService()
                break
            except Exception:
                if attempt == 49:
                    raise
                await sleep(0.1)
        waited = 0
        while "a" not in coordinator.local_names() and waited < 50:
            await sleep(0.1)
            waited += 1
        self.assertIn("a", coordinator.local_names())
        b = await self.component("b", coordinator)
        self.assertEqual(await b.ask("a", "x"), ("ok", []))


class LecoSectionTests(TestCase):
    """The [leco] section puts our actors and director on our Coordinator's hub."""

    timeout = 20

    def section(self, **overrides: Any) -> dict[str, Any]:
        section = {key: option.default for key, option in OPTIONS.items()}
        section.update(port=0, data_proxy=False, data_publish=False, export=["dev"],
                       remote=[{"name": "far", "actor": "N9.far", "kind": "generic",
                                "parameters": [], "actions": []}])
        section.update(overrides)
        return section

    def test_own_coordinator_uses_the_hub(self) -> None:
        """With our Coordinator and no `connect`, actors and the director use its hub."""
        top = plugin.make_service(DeviceRegistry(), self.section(), reactor)
        coordinator = top.getServiceNamed("coordinator")
        self.assertIs(top.getServiceNamed("actor-dev").hub, coordinator.local_hub)
        self.assertIs(top.getServiceNamed("director").component.hub, coordinator.local_hub)

    def test_connect_elsewhere_uses_zmq(self) -> None:
        """With `connect` set (another Coordinator), everything goes over ZeroMQ."""
        top = plugin.make_service(DeviceRegistry(),
                           self.section(connect="tcp://127.0.0.1:1"), reactor)
        self.assertIsNone(top.getServiceNamed("actor-dev").hub)
        self.assertIsNone(top.getServiceNamed("director").component.hub)
        top = plugin.make_service(DeviceRegistry(), self.section(coordinator=False), reactor)
        self.assertIsNone(top.getServiceNamed("actor-dev").hub)

    async def test_stop_signs_out_without_waiting(self) -> None:
        """Stopping a Coordinator with its hub Components: their sign-outs are answered."""
        top = MultiService()
        coordinator = CoordinatorService("N1", "tcp://127.0.0.1:*", reactor)
        coordinator.setServiceParent(top)
        components = [Component(name, "", reactor, hub=coordinator.local_hub)
                      for name in ("a", "b")]
        for component in components:
            component.setServiceParent(top)
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        top.startService()
        for component in components:
            await component.when_signed_in()
        self.assertEqual(sorted(coordinator.local_names()), ["a", "b"])
        started = time.monotonic()
        await top.stopService()
        # a dropped sign-out would wait out its 1 s deadline
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertFalse(any("dropped" in str(e.get("log_format", "")) for e in events))


class CameraToInProcessDirectorTests(TestCase):
    """A camera frame from an actor over ZeroMQ to a director on the hub."""

    timeout = 30

    async def test_frame_not_copied_on_the_way_in(self) -> None:
        """
        The lab's own director (on the hub) grabs a 4 MiB frame from an actor
        in another process's place (over ZeroMQ): the values arrive, as a
        view on the ZeroMQ frame the Coordinator received (no copy on the
        reactor thread).
        """
        import zmq

        from tests.test_headroom import camera_over_leco
        from twisted_lab.data import Export, Signal
        from twisted_lab.testing import FakeDetector

        frame = np.random.default_rng(2).random((512, 1024))
        far = DeviceRegistry(reactor)
        far.register(FakeDetector("cam", Export("cam", [
            Signal("cam", [frame], kind="DataFromPlugins")])))
        cam = await camera_over_leco(self, far, "cam", actor_on_hub=False, director_on_hub=True)
        got = (await cam.grab()).signals[0].data[0]
        np.testing.assert_array_equal(got, frame)
        self.assertFalse(got.flags.writeable)
        base = got
        while isinstance(base, np.ndarray):
            base = base.base
        self.assertIsInstance(base, memoryview)
        self.assertIsInstance(base.obj, zmq.Frame)
