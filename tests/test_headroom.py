# -*- test-case-name: tests.test_headroom -*-
"""
Tests for L{twisted_lab.headroom}: large arrays with room around them, and
the PyMoDAQ 5 LECO message laid out in that room instead of copied, from
serializall's encoder (L{serializall.encode_buffer}) to a frame read from a
PyMoDAQ 4 instrument and sent on over ZeroMQ.
"""
from __future__ import annotations

import gc
import threading
from typing import Any

import numpy as np
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.polling import until
from twisted_lab import headroom
from twisted_lab.data import Axis, Export, Signal
from twisted_lab.devices.simulated import SimulatedCamera
from twisted_lab.protocols.leco import serializall
from twisted_lab.protocols.pymodaq.codec import join
from twisted_lab.protocols.pymodaq.message import TO_SERVER, MessageParser, encode_message

SHAPE = (512, 1024)  # 4 MiB of float64: above ROOMY_FROM


def camera_export(frame: Any, axis_points: int = 4) -> Export:
    """A camera-like export around C{frame}: labels, units, two axes."""
    return Export("cam", [Signal("cam", [frame], labels=["image"], units="counts",
                                 axes=[Axis("y", "px", np.arange(float(axis_points)), index=0)],
                                 kind="DataFromPlugins", origin="cam")])


def spy_on_lay_out(test: SynchronousTestCase) -> list[bool]:
    """
    Record, for the rest of C{test}, whether each L{headroom.lay_out} call
    laid a message out in place (C{True}) or left it to be copied.
    """
    laid_out: list[bool] = []
    real_lay_out = headroom.lay_out

    def spy(parts: Any, sizes: Any) -> Any:
        message = real_lay_out(parts, sizes)
        laid_out.append(message is not None)
        return message

    test.patch(headroom, "lay_out", spy)
    return laid_out


def roomy_frame(seed: int = 0) -> Any:
    frame = headroom.empty(SHAPE, np.float64)
    frame[...] = np.random.default_rng(seed).random(SHAPE)
    return frame


async def camera_over_leco(test: TestCase, source: Any, name: str, *, actor_on_hub: bool,
                           director_on_hub: bool) -> Any:
    """
    Our Coordinator, an actor with the PyMoDAQ 5 method set for C{source}'s
    device C{name}, and our LECO director of it, each on the Coordinator's
    in-process hub or over ZeroMQ as asked; all stopped at cleanup.

    @return: the director's device for C{name}.
    """
    from twisted_lab.protocols.leco.coordinator import CoordinatorService
    from twisted_lab.protocols.leco.export import DeviceActor
    from twisted_lab.protocols.leco.imports import DirectorService
    from twisted_lab.registry import DeviceRegistry

    coordinator = CoordinatorService("N1", "tcp://127.0.0.1:*", reactor)
    coordinator.startService()
    test.addCleanup(coordinator.stopService)
    assert coordinator.endpoint is not None
    hub = coordinator.local_hub
    actor = DeviceActor(source, name, coordinator.endpoint, reactor, timeout=30.0,
                        hub=hub if actor_on_hub else None)
    actor.startService()
    test.addCleanup(actor.stopService)
    await actor.when_signed_in()
    far = DeviceRegistry(reactor)
    director = DirectorService(far, [{"name": name, "actor": name, "kind": "pymodaq_detector",
                                      "parameters": [], "actions": []}],
                               coordinator.endpoint, reactor, "test_director", 30.0,
                               hub=hub if director_on_hub else None)
    director.startService()
    test.addCleanup(director.stopService)
    return await far.when_registered(name)


class EmptyTests(SynchronousTestCase):
    def test_large_arrays_get_room(self) -> None:
        """
        An array of L{headroom.ROOMY_FROM} bytes or more is a plain, writable,
        C-contiguous C{ndarray} of the shape and dtype asked for, with room.
        """
        frame = headroom.empty(SHAPE, np.float64)
        self.assertIs(type(frame), np.ndarray)
        self.assertEqual((frame.shape, frame.dtype), (SHAPE, np.dtype(np.float64)))
        self.assertTrue(frame.flags.c_contiguous and frame.flags.writeable)
        self.assertTrue(headroom.has_room(frame))

    def test_small_arrays_do_not(self) -> None:
        """Below L{headroom.ROOMY_FROM} bytes, C{empty} is C{numpy.empty}."""
        small = headroom.empty(1000, np.uint16)
        self.assertEqual(small.shape, (1000,))
        self.assertFalse(headroom.has_room(small))

    def test_parts_of_an_array_have_no_room(self) -> None:
        """Only all of the array counts: a slice's neighbours are its data."""
        frame = headroom.empty(SHAPE, np.float64)
        self.assertFalse(headroom.has_room(frame[1:]))
        self.assertFalse(headroom.has_room(np.zeros(SHAPE)))


class LayOutTests(SynchronousTestCase):
    """serializall's large-frame encoder builds the message in the room."""

    def test_in_place_and_equal(self) -> None:
        """
        The message shares the frame's memory, is byte for byte what the
        plain encoder gives, and the frame's values are untouched.
        """
        frame = roomy_frame()
        before = frame.copy()
        export = camera_export(frame)
        message = serializall.encode_buffer(export)
        self.assertTrue(np.shares_memory(message, frame))
        self.assertEqual(bytes(message), serializall.encode(export))
        np.testing.assert_array_equal(frame, before)
        decoded = serializall.decode(message)
        np.testing.assert_array_equal(decoded.signals[0].data[0], before)

    def test_message_is_read_only(self) -> None:
        """
        Nothing that reads the message (an in-process director decoding it)
        can write through it into the frame.
        """
        frame = roomy_frame()
        message = serializall.encode_buffer(camera_export(frame))
        self.assertTrue(np.shares_memory(message, frame))
        self.assertFalse(message.flags.writeable)
        self.assertTrue(memoryview(message).readonly)
        decoded = serializall.decode(message).signals[0].data[0]
        self.assertFalse(decoded.flags.writeable)

    def test_one_message_at_a_time(self) -> None:
        """
        While a message laid out in a frame's room is held, the next one is
        copied (equal bytes); once it is released, the room is used again.
        """
        frame = roomy_frame()
        export = camera_export(frame)
        first = serializall.encode_buffer(export)
        second = serializall.encode_buffer(export)
        self.assertTrue(np.shares_memory(first, frame))
        self.assertFalse(np.shares_memory(second, frame))
        self.assertEqual(bytes(second), bytes(first))
        del first
        gc.collect()
        third = serializall.encode_buffer(export)
        self.assertTrue(np.shares_memory(third, frame))

    def test_a_different_wrapper_while_held(self) -> None:
        """
        Two exports of the same frame with different headers: the second
        is copied, so the first message's bytes stay as they were.
        """
        frame = roomy_frame()
        first_export = camera_export(frame)
        first = serializall.encode_buffer(first_export)
        other = Export("another name", [Signal("other", [frame], kind="DataFromPlugins")])
        second = serializall.encode_buffer(other)
        self.assertEqual(bytes(first), serializall.encode(first_export))
        self.assertEqual(bytes(second), serializall.encode(other))

    def test_concurrent_encoders_share_nothing(self) -> None:
        """Eight threads encode one frame at once: exactly one uses the room."""
        frame = roomy_frame()
        export = camera_export(frame)
        start = threading.Barrier(8)
        messages: list[Any] = []

        def encode() -> None:
            start.wait()
            messages.append(serializall.encode_buffer(export))

        threads = [threading.Thread(target=encode) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(sum(np.shares_memory(m, frame) for m in messages), 1)
        expected = serializall.encode(export)
        self.assertTrue(all(bytes(m) == expected for m in messages))

    def test_too_little_room_copies(self) -> None:
        """An export whose tail outgrows L{headroom.TAIL} is copied, and right."""
        frame = roomy_frame()
        export = camera_export(frame, axis_points=headroom.TAIL // 8 + 1)
        message = serializall.encode_buffer(export)
        self.assertFalse(np.shares_memory(message, frame))
        self.assertEqual(bytes(message), serializall.encode(export))

    def test_two_large_arrays_copy(self) -> None:
        """Two large arrays in one message: copied (one room cannot hold both)."""
        first, second = roomy_frame(1), roomy_frame(2)
        export = Export("cam", [Signal("cam", [first, second], kind="DataFromPlugins")])
        message = serializall.encode_buffer(export)
        self.assertFalse(np.shares_memory(message, first) or np.shares_memory(message, second))
        self.assertEqual(bytes(message), serializall.encode(export))

    def test_slice_copies_and_leaves_neighbours(self) -> None:
        """A slice of a roomy frame is copied; the rows around it keep their values."""
        frame = roomy_frame()
        before = frame.copy()
        export = camera_export(frame[8:-8])
        message = serializall.encode_buffer(export)
        self.assertFalse(np.shares_memory(message, frame))
        self.assertEqual(bytes(message), serializall.encode(export))
        np.testing.assert_array_equal(frame, before)

    def test_plain_arrays_copy(self) -> None:
        """A frame numpy allocated is copied, as before."""
        frame = np.random.default_rng(0).random(SHAPE)
        export = camera_export(frame)
        message = serializall.encode_buffer(export)
        self.assertFalse(np.shares_memory(message, frame))
        self.assertEqual(bytes(message), serializall.encode(export))


class SourcesTests(SynchronousTestCase):
    """Where the lab's large frames come from, they come with room."""

    def test_pymodaq4_arrays_read_into_room(self) -> None:
        """
        A large array the PyMoDAQ 4 parser collects (fed in 64 KiB chunks,
        and read into its buffer as the transport's C{recv_into} does) has
        room, and its values.
        """
        frame = np.random.default_rng(3).random(SHAPE)
        wire = join(encode_message("Done", camera_export(frame)))
        for how in ("feed", "recv_into"):
            parser = MessageParser(TO_SERVER)
            messages: list[Any] = []
            at = 0
            while at < len(wire):
                view = parser.fill_view() if how == "recv_into" else None
                if view is None:
                    messages += parser.feed(wire[at:at + 65536])
                    at += 65536
                    continue
                n = min(len(view), 65536, len(wire) - at)
                view[:n] = wire[at:at + n]
                at += n
                messages += parser.filled(n)
            (message,) = messages
            array = message.args[0].signals[0].data[0]
            np.testing.assert_array_equal(array, frame)
            self.assertTrue(headroom.has_room(array), how)

    def test_simulated_camera_frames(self) -> None:
        """The simulated camera's large frames have room, float and uint16 alike."""
        for dtype in ("float64", "uint16"):
            camera = SimulatedCamera("cam", reactor, width=1024, height=1024, dtype=dtype)
            image = camera.image()
            self.assertEqual((image.shape, str(image.dtype)), ((1024, 1024), dtype))
            self.assertTrue(headroom.has_room(image), dtype)


class ChainTests(TestCase):
    """
    Over real loopback sockets, in one process: an instrument (our PyMoDAQ 4
    client role) -> the lab (our PyMoDAQ server role, our Coordinator and an
    actor with the PyMoDAQ 5 method set, in memory) -> our LECO director
    over ZeroMQ.
    """

    async def test_frames_sent_from_where_they_were_read(self) -> None:
        """
        Each grab's frame arrives whole at the director, and the actor's
        message was laid out in the room of the frame the lab read (not
        copied), grab after grab.
        """
        from twisted_lab.protocols.pymodaq.export import (PyMoDAQClientFactory,
                                                          PyMoDAQExportService)
        from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerFactory
        from twisted_lab.registry import DeviceRegistry
        from twisted_lab.testing import FakeDetector

        laid_out = spy_on_lay_out(self)
        frame = np.random.default_rng(5).random(SHAPE)
        instrument = DeviceRegistry(reactor)
        instrument.register(FakeDetector("frame", camera_export(frame)))
        lab = DeviceRegistry(reactor)
        server = PyMoDAQServerFactory(lab, reactor, call_timeout=30.0, rules=[{"name": "cam"}])
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server)
        self.addCleanup(port.stopListening)
        self.addCleanup(server.stop)
        source = PyMoDAQExportService(reactor, f"tcp:127.0.0.1:{port.getHost().port}",
                                      PyMoDAQClientFactory(instrument, "frame", "GRABBER"))
        source.startService()
        self.addCleanup(source.stopService)
        cam = await lab.when_registered("cam")
        await until(lambda: cam.online, 30, "the instrument connected")
        remote = await camera_over_leco(self, lab, "cam", actor_on_hub=True,
                                        director_on_hub=False)
        for _ in range(3):
            got = await remote.grab()
            np.testing.assert_array_equal(got.signals[0].data[0], frame)
        self.assertEqual(laid_out, [True, True, True])
