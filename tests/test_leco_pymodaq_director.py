# -*- test-case-name: tests.test_leco_pymodaq_director -*-
"""
Tests for L{twisted_lab.protocols.leco.pymodaq_director}: a remote PyMoDAQ 5
module as a registry device, driven through a fake Component whose callbacks
come in through the real JSON-RPC dispatcher.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_lab.data import Export, Signal
from twisted_lab.errors import DeviceOffline, DeviceTimeout, InvalidValue
from twisted_lab.events import DATA
from twisted_lab.interfaces import IActuator, IDetector
from twisted_lab.protocols.leco import serializall
from twisted_lab.formats.pymodaq.settings import value_xml
from twisted_lab.protocols.leco.pymodaq_director import (DIRECTOR_METHODS,
                                                         PyMoDAQRemoteActuator, make_remote)
from twisted_lab.protocols.leco.rpc import RemoteError
from twisted_lab.formats.pymodaq.objects import ParameterWithPath
from twisted_lab.registry import DeviceRegistry
from tests.test_leco_pymodaq_actor import FakeComponent

SETTINGS = ('<move_settings type="group" title="m"><speed type="float" title="s">2.5</speed>'
            '<multiaxes type="group" title="x"><axis type="list" title="a">str(\'X\')</axis>'
            '</multiaxes></move_settings>')


def _da(value: float, units: str = "mm") -> bytes:
    return serializall.encode(Signal.scalar("actuator", value, units, kind="DataActuator"))


class _Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.component = FakeComponent("lab.twisted_director")

    def remote(self, kind: str = "pymodaq_actuator", actor: str = "mock") -> Any:
        device = make_remote(self.component, self.registry, "remote_" + actor, actor, kind,
                             self.clock, timeout=1.0)
        self.addCleanup(device.stop_polling)
        return device

    def cb(self, method: str, params: Any, frames: list[bytes] | None = None,
           sender: str = "N1.mock") -> dict[str, Any]:
        return self.component.request(method, params, frames, sender=sender)

    def asked(self, method: str) -> list[tuple[str, Any, list[bytes]]]:
        return self.component.callbacks(method)


class SetupTests(_Base):
    def test_registered_and_introduced(self) -> None:
        """make_remote registers the device, calls set_remote_name with our full name and
        get_settings, and registers every director callback once."""
        device = self.remote()
        self.assertIs(self.registry.lookup("remote_mock"), device)
        self.assertTrue(verifyObject(IActuator, device))
        self.assertEqual(self.asked("set_remote_name"),
                         [("mock", {"name": "lab.twisted_director"}, [])])
        self.assertEqual(len(self.asked("get_settings")), 1)
        for method in DIRECTOR_METHODS:
            self.assertIn(method, self.component.server.methods)

    def test_settings_received(self) -> None:
        """
        set_director_settings stores the XML and its leaf values, a C{list}
        value read as PyMoDAQ reads it (C{str('X')} is C{'X'}), never evaluated.
        """
        device = self.remote()
        self.assertIsNone(self.cb("set_director_settings", {"settings": SETTINGS})["result"])
        self.assertEqual(device.settings_xml, SETTINGS)
        self.assertEqual(device.remote_settings, {"speed": 2.5, "axis": "X"})

    def test_director_info(self) -> None:
        """set_director_info updates one remote setting from a ParameterWithPath frame."""
        device = self.remote()
        frame = serializall.encode(ParameterWithPath(["speed"], value_xml("speed", "float", 4.0)))
        self.assertIsNone(self.cb("set_director_info", {"parameter": None}, [frame])["result"])
        self.assertEqual(device.remote_settings["speed"], 4.0)

    def test_detector(self) -> None:
        """kind pymodaq_detector gives an IDetector."""
        self.assertTrue(verifyObject(IDetector, self.remote("pymodaq_detector", "cam")))

    def test_unknown_kind(self) -> None:
        """An unknown kind is refused."""
        self.assertRaises(InvalidValue, make_remote, self.component, self.registry, "x", "y",
                          "oscilloscope", self.clock)


class ActuatorTests(_Base):
    def test_move_abs(self) -> None:
        """move_abs sends move_abs(position=null)+DataActuator, then fires with the position of
        set_move_done."""
        device = self.remote()
        d = device.move_abs(1.5)
        [(receiver, params, frames)] = self.asked("move_abs")
        self.assertEqual((receiver, params), ("mock", {"position": None}))
        sent = serializall.decode(frames[0])
        self.assertEqual((sent.kind, sent.value()), ("DataActuator", 1.5))
        self.assertNoResult(d)
        self.assertIsNone(self.cb("set_move_done", {"data": None}, [_da(1.5)])["result"])
        self.assertEqual(self.successResultOf(d), 1.5)
        self.assertEqual(device.units, "mm")

    def test_move_rel_home_and_json_forms(self) -> None:
        """move_rel/move_home, and the JSON forms {"position": x} and a bare number."""
        device = self.remote()
        d1 = device.move_rel(0.5)
        self.cb("set_move_done", {"data": {"position": 0.5}})
        d2 = device.move_home()
        self.cb("set_move_done", {"data": 0})
        self.assertEqual((self.successResultOf(d1), self.successResultOf(d2)), (0.5, 0.0))
        self.assertEqual(serializall.decode(self.asked("move_rel")[0][2][0]).value(), 0.5)

    def test_position(self) -> None:
        """position() asks get_actuator_value and fires with send_position's value."""
        device = self.remote()
        d = device.position()
        self.assertEqual(len(self.asked("get_actuator_value")), 1)
        self.cb("send_position", {"data": None}, [_da(-2.0)])
        self.assertEqual(self.successResultOf(d), -2.0)

    def test_move_done_deadline(self) -> None:
        """No set_move_done within done_timeout: the move fails with DeviceTimeout."""
        device = self.remote()
        d = device.move_abs(1.0)
        self.clock.advance(device.done_timeout - 0.1)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.failureResultOf(d, DeviceTimeout)

    def test_data_event(self) -> None:
        """A finished move emits a data event with the position."""
        device = self.remote()
        events: list[Any] = []
        device.subscribe(events.append)
        device.move_abs(3.0)
        self.cb("set_move_done", {"data": None}, [_da(3.0)])
        self.assertEqual([(e.kind, e.value) for e in events], [(DATA, 3.0)])


class DetectorTests(_Base):
    def test_grab(self) -> None:
        """grab() asks send_data_snap and fires with set_data's DataToExport."""
        device = self.remote("pymodaq_detector", "cam")
        d = device.grab()
        self.assertEqual(len(self.asked("send_data_snap")), 1)
        export = Export("cam", [Signal("cam", [np.arange(6.0).reshape(2, 3)],
                                       kind="DataFromPlugins", extra={"do_plot": True})])
        self.cb("set_data", {"data": None}, [serializall.encode(export)], sender="N1.cam")
        self.assertEqual(self.successResultOf(d), export)

    def test_grab_json_forms(self) -> None:
        """set_data with the JSON forms of spec §13.3 (number, list, dict with axes)."""
        device = self.remote("pymodaq_detector", "cam")
        d1 = device.grab()
        self.cb("set_data", {"data": 4.5}, sender="N1.cam")
        self.assertEqual(self.successResultOf(d1)[0].value(), 4.5)
        d2 = device.grab()
        self.cb("set_data", {"data": {"data": [1, 2, 3], "axes": [
            {"label": "x", "units": "m", "data": [0, 1, 2]}]}}, sender="N1.cam")
        signal = self.successResultOf(d2)[0]
        self.assertEqual((signal.shape, signal.axes[0].label), ((3,), "x"))

    def test_unsolicited_data(self) -> None:
        """set_data with no grab waiting (a remote continuous grab) is a data event."""
        device = self.remote("pymodaq_detector", "cam")
        events: list[Any] = []
        device.subscribe(events.append)
        self.cb("set_data", {"data": 1.0}, sender="N1.cam")
        self.assertEqual(events[0].kind, DATA)


class LivenessTests(_Base):
    def test_unknown_actor_goes_offline(self) -> None:
        """The Coordinator answering -32093 puts the device offline; pending calls fail."""
        device = self.remote()
        d = device.move_abs(1.0)
        self.component.answers["mock"] = RemoteError(-32093, "Receiver is not in addresses list.")
        self.clock.advance(1.0)
        self.assertFalse(device.online)
        self.failureResultOf(d, DeviceOffline)
        self.failureResultOf(device.move_abs(2.0), DeviceOffline)

    def test_comes_back(self) -> None:
        """When pong succeeds again the device is introduced again and goes online."""
        device = self.remote()
        self.component.answers["mock"] = RemoteError(-32093, "gone")
        self.clock.advance(1.0)
        self.assertFalse(device.online)
        del self.component.answers["mock"]
        self.clock.advance(1.0)
        self.assertTrue(device.online)
        self.assertIs(self.registry.lookup("remote_mock"), device)
        self.assertEqual(len(self.asked("set_remote_name")), 2)

    def test_refused_call_fails(self) -> None:
        """An error reply to move_abs fails the move at once."""
        device = self.remote()
        self.component.answers["mock"] = RemoteError(-32602, "Invalid params")
        self.failureResultOf(device.move_abs(1.0), RemoteError)


class BadCallbackTests(_Base):
    def test_unknown_sender(self) -> None:
        """A callback from a module we do not direct is an error reply."""
        self.remote()
        self.assertEqual(self.cb("set_move_done", {"data": 1.0}, sender="N1.other")["error"]["code"],
                         -32602)

    def test_garbage_frame(self) -> None:
        """A malformed frame in set_move_done is an error reply; the move still waits."""
        device = self.remote()
        d = device.move_abs(1.0)
        response = self.cb("set_move_done", {"data": None}, [b"\xff" * 7])
        self.assertIn("ProtocolError", response["error"]["data"])
        self.assertNoResult(d)
        self.cb("set_move_done", {"data": None}, [_da(1.0)])
        self.assertEqual(self.successResultOf(d), 1.0)

    def test_wrong_object(self) -> None:
        """set_data on an actuator, a string position, bad settings: error replies."""
        self.remote()
        self.assertIn("error", self.cb("set_data", {"data": 1.0}))
        self.assertIn("error", self.cb("set_move_done", {"data": "far"}))
        self.assertIn("error", self.cb("set_director_settings", {"settings": "<a"}))
        self.assertIn("error", self.cb("set_director_settings", {"settings": 5}))

    def test_wrong_object_grab(self) -> None:
        """set_data carrying a string is refused; the grab still waits."""
        device = self.remote("pymodaq_detector", "cam")
        d = device.grab()
        self.assertIn("error", self.cb("set_data", {"data": None}, [serializall.encode("x")],
                                       sender="N1.cam"))
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d)


class ManyTests(_Base):
    def test_two_remotes_one_component(self) -> None:
        """Two remote modules on one component get their own callbacks."""
        a = self.remote(actor="a")
        b = self.remote(actor="b")
        da, db = a.move_abs(1.0), b.move_abs(2.0)
        self.cb("set_move_done", {"data": 2.0}, sender="N1.b")
        self.assertNoResult(da)
        self.assertEqual(self.successResultOf(db), 2.0)
        self.cb("set_move_done", {"data": 1.0}, sender="N1.a")
        self.assertEqual(self.successResultOf(da), 1.0)
        self.assertIsInstance(a, PyMoDAQRemoteActuator)

