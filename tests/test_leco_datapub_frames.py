# -*- test-case-name: tests.test_leco_datapub_frames -*-
"""
Camera frames on the LECO data protocol: L{export_frames} gives each
channel's raw C-order little-endian bytes as a view of the array (no copy
on the reactor), and a grab published through our proxy reaches a plain
subscriber with the image bytes intact (the proxy passes large frames on
without copying them); a subscriber that stops reading is kept a bounded
number of messages.  Real sockets on loopback for the latter.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import zmq
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.polling import until
from twisted_lab.data import Export, Signal
from twisted_lab.protocols.leco.datapub import (
    SUBSCRIBER_HWM,
    DataPublisher,
    ProxyService,
    RegistryPublisher,
    export_frames,
)
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDetector


class ExportFramesTests(SynchronousTestCase):
    """What L{export_frames} puts in each binary frame."""

    def test_contiguous_array_is_a_view(self) -> None:
        """A C-contiguous little-endian image is sent as a view, equal to its bytes."""
        image = np.arange(300 * 400, dtype="<u2").reshape(300, 400)
        content, frames = export_frames("cam", Export("cam", [Signal("cam", [image])]))
        channel = content["cam"]["signals"][0]["channels"][0]
        self.assertEqual(channel, {"dtype": "<u2", "shape": [300, 400], "frame": 0})
        self.assertIsInstance(frames[0], memoryview)
        self.assertIs(frames[0].obj, image)
        self.assertEqual(bytes(frames[0]), image.tobytes())

    def test_other_layouts_are_converted(self) -> None:
        """Fortran-ordered and big-endian arrays become C-order little-endian bytes."""
        fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
        big = np.arange(12, dtype=">i4").reshape(3, 4)
        content, frames = export_frames("cam", Export("cam", [Signal("cam", [fortran, big])]))
        channels = content["cam"]["signals"][0]["channels"]
        self.assertEqual([c["dtype"] for c in channels], ["<f8", "<i4"])
        self.assertEqual(bytes(frames[0]), np.ascontiguousarray(fortran).tobytes())
        self.assertEqual(np.frombuffer(bytes(frames[1]), "<i4").reshape(3, 4).tolist(),
                         big.tolist())


class PublishedGrabTests(TestCase):
    """A grab through our publisher and proxy, to a plain pyzmq subscriber."""

    timeout = 60

    async def test_large_image_intact(self) -> None:
        """A 1024x512 uint16 image (1 MiB) arrives as one frame equal to the array."""
        await self.check_grab(lambda proxy: proxy.xsub_endpoint)

    async def test_large_image_intact_inproc(self) -> None:
        """The same through the proxy's C{inproc://} endpoint (a publisher of this process)."""
        await self.check_grab(lambda proxy: proxy.inproc_endpoint)

    async def test_inproc_endpoint_after_restart(self) -> None:
        """A proxy stopped and started again binds its inproc endpoint again."""
        proxy = ProxyService(reactor, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
        proxy.startService()
        first = proxy.inproc_endpoint
        assert first is not None
        self.assertTrue(first.startswith("inproc://"))
        proxy.stopService()
        self.assertIsNone(proxy.inproc_endpoint)
        await self.check_grab(lambda proxy: proxy.inproc_endpoint, proxy)
        self.assertEqual(proxy.inproc_endpoint, first)

    async def check_grab(self, endpoint: Any, proxy: ProxyService | None = None) -> None:
        if proxy is None:
            proxy = ProxyService(reactor, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
        proxy.startService()
        self.addCleanup(proxy.stopService)
        image = (np.arange(1024 * 512) % 65521).astype("<u2").reshape(1024, 512)
        registry = DeviceRegistry(reactor)
        registry.register(FakeDetector("cam", Export("cam", [Signal("cam", [image])])))
        publisher = RegistryPublisher(registry, reactor, endpoint(proxy), {"cam": "lab.cam"})
        publisher.startService()
        self.addCleanup(publisher.stopService)
        context: zmq.Context[Any] = zmq.Context()
        self.addCleanup(context.term)
        sub = context.socket(zmq.SUB)
        self.addCleanup(sub.close, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"lab.cam")
        assert proxy.xpub_endpoint is not None
        sub.connect(proxy.xpub_endpoint)
        await until(lambda: b"lab.cam" in proxy.topics, 20,  # type: ignore[union-attr]
                    "the subscription reached the proxy")
        received: list[list[bytes]] = []

        async def grab_until_received() -> None:
            # PUB/SUB: the publisher may not have the subscription yet; grab again
            for _ in range(200):
                await registry.lookup("cam").grab()
                try:
                    await until(lambda: bool(sub.poll(0)), 0.1)
                except AssertionError:
                    continue
                received.append(sub.recv_multipart())
                return
            self.fail("no grab was received")

        await grab_until_received()
        topic, header, content, *binary = received[0]
        self.assertEqual(topic, b"lab.cam")
        self.assertEqual(header[-1], 1)  # JSON
        channel = json.loads(content)["cam"]["signals"][0]["channels"][0]
        self.assertEqual((channel["dtype"], channel["shape"]), ("<u2", [1024, 512]))
        self.assertEqual(len(binary), 1)
        self.assertEqual(binary[channel["frame"]], image.tobytes())


class StalledSubscriberTests(TestCase):
    """What the proxy keeps for a subscriber that does not read."""

    timeout = 120

    async def test_stalled_subscriber_bounded(self) -> None:
        """
        Of 300 messages of 256 KiB passed on while a subscriber does not
        read, it is kept at most L{SUBSCRIBER_HWM} plus what the sockets'
        buffers hold (far fewer than 300): the rest are dropped, not queued.
        """
        proxy = ProxyService(reactor, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
        proxy.startService()
        self.addCleanup(proxy.stopService)
        self.assertEqual(proxy.subscriber_hwm, SUBSCRIBER_HWM)
        context: zmq.Context[Any] = zmq.Context()
        self.addCleanup(context.term)
        sub = context.socket(zmq.SUB)
        self.addCleanup(sub.close, 0)
        sub.setsockopt(zmq.RCVHWM, 1)
        sub.setsockopt(zmq.RCVBUF, 65536)
        sub.setsockopt(zmq.SUBSCRIBE, b"t")
        assert proxy.xpub_endpoint is not None and proxy.inproc_endpoint is not None
        sub.connect(proxy.xpub_endpoint)
        await until(lambda: b"t" in proxy.topics, 20, "the subscription reached the proxy")
        publisher = DataPublisher(reactor, proxy.inproc_endpoint)
        self.addCleanup(publisher.close)

        def probe() -> bool:
            publisher.publish(b"t", {"probe": True})
            return proxy.forwarded > 0

        # the subscription reaches the publisher a moment later
        await until(probe, 20, "the publisher sends the topic")
        await until(lambda: bool(sub.poll(0)), 20, "a probe arrived")
        while sub.poll(200):
            sub.recv_multipart()
        before = proxy.forwarded
        payload = bytes(256 * 1024)
        for i in range(300):
            publisher.publish(b"t", {"i": i}, [payload])
        await until(lambda: proxy.forwarded >= before + 300, 60, "all passed on")
        received = 0
        while sub.poll(500):
            topic, _header, content, *binary = sub.recv_multipart()
            if json.loads(content).get("probe"):
                continue
            self.assertEqual(len(binary[0]), len(payload))
            received += 1
        self.assertGreater(received, 0)
        self.assertLess(received, 100)
