# -*- test-case-name: tests.test_leco_pymodaq_actor -*-
"""
Tests for L{twisted_lab.protocols.leco.pymodaq_actor}: the PyMoDAQ 5 actor
method set on a (fake) LECO Component, answered through the real JSON-RPC
dispatcher of L{twisted_lab.protocols.leco.rpc}.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.data import Export, Signal
from twisted_lab.description import Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.errors import DeviceTimeout
from twisted_lab.events import CHANGED, LabEvent
from twisted_lab.leases import Owner
from twisted_lab.protocols.leco import serializall
from twisted_lab.formats.pymodaq.settings import read_parameter, settings_tree, value_xml
from twisted_lab.protocols.leco.pymodaq_actor import (ACTOR_METHODS, MAX_CALLBACK_FAILURES,
                                                      MAX_DIRECTORS, register_pymodaq_methods)
from twisted_lab.protocols.leco.rpc import RPCServer, RemoteError
from twisted_lab.formats.pymodaq.objects import ParameterWithPath
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeActuator, FakeDetector


class FakeComponent:
    """
    The Component contract, with the real JSON-RPC dispatcher: requests go in
    through L{request}; L{ask} records the callbacks and answers them from
    L{answers} (null by default).
    """

    def __init__(self, full_name: str = "lab.stage") -> None:
        self.full_name = full_name
        self.server = RPCServer(lambda: self.full_name)
        self.caller: str | None = None
        self.asked: list[tuple[str, str, Any, list[bytes]]] = []
        self.answers: dict[str, Any] = {}

    def register_method(self, name: str, fn: Any, doc: str | None = None) -> None:
        self.server.register(name, fn, doc)

    def ask(self, receiver: str, method: str, params: Any = None, frames: Any = (),
            timeout: float | None = None) -> Deferred[tuple[Any, list[bytes]]]:
        self.asked.append((receiver, method, params, list(frames)))
        answer = self.answers.get(receiver)
        if isinstance(answer, Exception):
            return fail(answer)
        if isinstance(answer, Deferred):
            return answer
        return succeed((None, []))

    def request(self, method: str, params: Any = None, frames: list[bytes] | None = None,
                sender: str = "N1.director") -> dict[str, Any]:
        """Dispatch one request as the Component would; return the decoded response."""
        body: dict[str, Any] = {"id": 7, "method": method, "jsonrpc": "2.0"}
        if params is not None:
            body["params"] = params
        self.caller = sender
        try:
            out = self.server.handle(json.dumps(body).encode(), frames or [], sender)
        finally:
            self.caller = None
        assert not isinstance(out, Deferred), "PyMoDAQ methods must answer at once"
        payload, binary = out
        assert payload is not None
        response: dict[str, Any] = json.loads(payload)
        return response

    def callbacks(self, method: str) -> list[tuple[str, Any, list[bytes]]]:
        return [(r, p, f) for r, m, p, f in self.asked if m == method]


class SettingsDevice(BaseDevice):
    """A plain device with typed parameters."""

    def __init__(self) -> None:
        super().__init__("cam", [Parameter("exposure", "float", units="s", minimum=0.0,
                                           default=0.1, doc="exposure time"),
                                 Parameter("gain", "int", default=2),
                                 Parameter("mode", "str", default="auto"),
                                 Parameter("cooled", "bool", default=False),
                                 Parameter("serial", "str", readonly=True, default="X1")])


class _Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = DeviceRegistry(self.clock)
        self.stage = FakeActuator("stage", units="mm")
        self.detector = FakeDetector("spectro")
        self.cam = SettingsDevice()
        for device in (self.stage, self.detector, self.cam):
            self.registry.register(device)

    def actor(self, name: str) -> tuple[FakeComponent, Any]:
        component = FakeComponent(f"lab.{name}")
        actor = register_pymodaq_methods(component, self.registry, name)
        component.request("set_remote_name", {"name": "N1.director"})
        return component, actor


class RegistrationTests(_Base):
    def test_methods_registered(self) -> None:
        """Every method of spec §13.2 (bar the dashboard ones) is offered."""
        component, _ = self.actor("stage")
        for name in ("set_remote_name", "move_abs", "move_rel", "move_home", "stop_motion",
                     "get_actuator_value", "send_data_grab", "send_data_snap", "stop_grab",
                     "get_settings", "set_info"):
            self.assertIn(name, component.server.methods)
        self.assertEqual(set(ACTOR_METHODS) - set(component.server.methods), set())

    def test_set_remote_name(self) -> None:
        """set_remote_name answers null and adds the director; with no name, the caller."""
        component, actor = self.actor("stage")
        self.assertEqual(component.request("set_remote_name", {"name": "N2.other"})["result"],
                         None)
        component.request("set_remote_name", sender="N3.caller")
        self.assertEqual(actor.remote_names, {"N1.director", "N2.other", "N3.caller"})

    def test_no_director_no_callback(self) -> None:
        """Without set_remote_name nobody is called back."""
        component = FakeComponent()
        register_pymodaq_methods(component, self.registry, "stage")
        component.request("get_actuator_value")
        self.assertEqual(component.asked, [])


class UnitsTests(_Base):
    """C{set_units}, as a PyMoDAQ 5 actor sends it, and the C{move_settings} tree."""

    def test_set_units_on_attach(self) -> None:
        """A director attaching to an actuator is sent C{set_units} with its units."""
        component, _ = self.actor("stage")
        self.assertEqual(component.callbacks("set_units"), [])  # after the reply
        self.clock.advance(0)
        self.assertEqual(component.callbacks("set_units"), [("N1.director", {"units": "mm"}, [])])

    def test_no_set_units_for_detectors(self) -> None:
        """Detectors have no units to send."""
        component, _ = self.actor("spectro")
        self.clock.advance(0)
        self.assertEqual(component.callbacks("set_units"), [])

    def test_set_units_on_change(self) -> None:
        """When the actuator's units change (with a change event), every director is told."""
        component, _ = self.actor("stage")
        component.request("set_remote_name", {"name": "N2.other"})
        self.clock.advance(0)
        del component.asked[:]
        self.stage.units = "um"
        self.stage.emit(LabEvent(CHANGED, "stage", "units", "um"))
        self.assertEqual(sorted(component.callbacks("set_units")),
                         [("N1.director", {"units": "um"}, []),
                          ("N2.other", {"units": "um"}, [])])
        del component.asked[:]
        self.stage.emit(LabEvent(CHANGED, "stage", "position", 1.0))
        self.assertEqual(component.callbacks("set_units"), [])

    def test_move_settings(self) -> None:
        """get_settings of an actuator: PyMoDAQ's common settings, units first."""
        component, _ = self.actor("stage")
        component.request("get_settings")
        [(_, params, _)] = component.callbacks("set_director_settings")
        root = ET.fromstring(params["settings"])
        self.assertEqual(root.tag, "move_settings")
        self.assertEqual([c.tag for c in root][:5],
                         ["units", "epsilon", "timeout", "bounds", "scaling"])
        self.assertEqual(root.find("units").text, "mm")  # type: ignore[union-attr]

    def test_set_info_common(self) -> None:
        """A director's write to a common setting is kept and echoed, not sent to the device."""
        component, actor = self.actor("stage")
        component.request("get_settings")
        xml = value_xml("epsilon", "float", 0.5)
        frame = serializall.encode(ParameterWithPath(["move_settings", "epsilon"], xml))
        self.assertIsNone(component.request("set_info", {"parameter": None}, [frame])["result"])
        self.assertEqual(actor.common.values["epsilon"], 0.5)
        [(_, _, frames)] = component.callbacks("set_director_info")
        self.assertIn(b"0.5", serializall.decode(frames[0]).xml.encode()
                      if isinstance(serializall.decode(frames[0]).xml, str)
                      else serializall.decode(frames[0]).xml)


class ActuatorTests(_Base):
    def test_move_abs_binary(self) -> None:
        """move_abs(position=null, DataActuator frame) answers null at once; set_move_done
        then carries a DataActuator frame with the position reached and the units."""
        component, _ = self.actor("stage")
        frame = serializall.encode(Signal.scalar("stage", 2.5, "mm", kind="DataActuator"))
        self.assertEqual(component.request("move_abs", {"position": None}, [frame]),
                         {"id": 7, "result": None, "jsonrpc": "2.0"})
        self.assertEqual(self.stage.calls, [("move_abs", 2.5)])
        [(receiver, params, frames)] = component.callbacks("set_move_done")
        self.assertEqual((receiver, params), ("N1.director", {"data": None}))
        done = serializall.decode(frames[0])
        self.assertEqual((done.kind, done.name, done.units, done.value()),
                         ("DataActuator", "stage", "mm", 2.5))

    def test_move_abs_answers_before_the_move_ends(self) -> None:
        """A slow move answers at once; set_move_done comes only when it ends."""
        self.stage.instant = False
        component, _ = self.actor("stage")
        self.assertIsNone(component.request("move_abs", {"position": 4.0})["result"])
        self.assertEqual(component.callbacks("set_move_done"), [])
        self.stage.finish()
        self.assertEqual(serializall.decode(component.callbacks("set_move_done")[0][2][0]).value(),
                         4.0)

    def test_move_abs_json_forms(self) -> None:
        """The deprecated JSON forms work: a number, a list, positional params."""
        component, _ = self.actor("stage")
        component.request("move_abs", {"position": 1})
        component.request("move_abs", {"position": [2.0, 9.0]})
        component.request("move_abs", [3.0])
        self.assertEqual(self.stage.calls, [("move_abs", 1.0), ("move_abs", 2.0), ("move_abs", 3.0)])

    def test_move_rel_and_home(self) -> None:
        """move_rel adds to the position; move_home goes home; each reports set_move_done."""
        component, _ = self.actor("stage")
        component.request("move_abs", {"position": 1.0})
        frame = serializall.encode(Signal.scalar("stage", 0.5, "mm", kind="DataActuator"))
        component.request("move_rel", {"position": None}, [frame])
        self.assertEqual(self.stage.current, 1.5)
        component.request("move_home")
        self.assertEqual(self.stage.current, 0.0)
        self.assertEqual([serializall.decode(f[0]).value()
                          for _, _, f in component.callbacks("set_move_done")], [1.0, 1.5, 0.0])

    def test_get_actuator_value(self) -> None:
        """get_actuator_value answers null, then send_position carries the position."""
        self.stage.current = -1.25
        component, _ = self.actor("stage")
        self.assertIsNone(component.request("get_actuator_value")["result"])
        [(_, params, frames)] = component.callbacks("send_position")
        self.assertEqual(params, {"data": None})
        self.assertEqual(serializall.decode(frames[0]).value(), -1.25)

    def test_stop_motion(self) -> None:
        """stop_motion stops the device and reports the position."""
        self.stage.instant = False
        component, _ = self.actor("stage")
        component.request("move_abs", {"position": 5.0})
        self.assertIsNone(component.request("stop_motion")["result"])
        self.assertIn(("stop",), self.stage.calls)
        self.assertEqual(len(component.callbacks("send_position")), 1)

    def test_lease_conflict_is_the_reply(self) -> None:
        """A move refused by another owner's lease is a -32050 error reply, no move made."""
        self.registry.acquire(Owner("plesty", "someone"), ["stage"])
        component, _ = self.actor("stage")
        response = component.request("move_abs", {"position": 1.0})
        self.assertEqual(response["error"]["code"], -32050)
        self.assertIn("LeaseConflict", response["error"]["data"])
        self.assertEqual(self.stage.calls, [])

    def test_lease_owner_is_the_caller(self) -> None:
        """The lease holder itself may move: the owner comes from owner_for(caller)."""
        self.registry.acquire(Owner("leco", "N1.director"), ["stage"])
        component, _ = self.actor("stage")
        self.assertIsNone(component.request("move_abs", {"position": 1.0})["result"])
        self.assertEqual(self.stage.calls, [("move_abs", 1.0)])

    def test_custom_owner_for(self) -> None:
        """owner_for maps the caller's name to the lease owner."""
        component = FakeComponent()
        seen = []
        register_pymodaq_methods(component, self.registry, "stage",
                                 lambda s: seen.append(s) or Owner("x", s))
        component.request("move_abs", {"position": 1.0}, sender="N9.d")
        self.assertEqual(seen, ["N9.d"])


class DetectorTests(_Base):
    def test_snap(self) -> None:
        """send_data_snap answers null, then set_data carries a DataToExport frame."""
        component, _ = self.actor("spectro")
        self.assertIsNone(component.request("send_data_snap")["result"])
        [(_, params, frames)] = component.callbacks("set_data")
        self.assertEqual(params, {"data": None})
        export = serializall.decode(frames[0])
        self.assertIsInstance(export, Export)
        self.assertEqual(export, self.detector.export)

    def test_grab_until_stopped(self) -> None:
        """send_data_grab sends one set_data per acquisition until stop_grab."""
        component, actor = self.actor("spectro")
        component.request("send_data_grab")
        self.assertEqual(len(component.callbacks("set_data")), 1)
        self.clock.advance(0.001)
        self.clock.advance(0.001)
        self.assertEqual(len(component.callbacks("set_data")), 3)
        component.request("stop_grab")
        self.clock.advance(0.001)
        self.clock.advance(0.001)
        self.assertEqual(len(component.callbacks("set_data")), 3)
        self.assertFalse(actor.grabbing)

    def test_grab_waits_for_the_director(self) -> None:
        """
        The next set_data is sent only after the director answered the
        previous one; the next acquisition runs meanwhile, and only one
        (at most one frame waits).
        """
        component, _ = self.actor("spectro")
        grabs = []
        grab = self.detector.grab
        self.patch(self.detector, "grab", lambda: grabs.append(1) or grab())
        pending: Deferred[Any] = Deferred()
        component.answers["N1.director"] = pending
        component.request("send_data_grab")
        for _ in range(5):
            self.clock.advance(0.001)
        self.assertEqual(len(component.callbacks("set_data")), 1)
        self.assertEqual(len(grabs), 2)
        component.answers.clear()
        pending.callback((None, []))
        self.assertEqual(len(component.callbacks("set_data")), 2)
        component.request("stop_grab")
        self.clock.advance(0.001)
        self.assertEqual(len(component.callbacks("set_data")), 2)

    def test_frame_acquired_at_stop_dropped(self) -> None:
        """A frame acquired while the previous one waited is not sent after stop_grab."""
        component, actor = self.actor("spectro")
        pending: Deferred[Any] = Deferred()
        component.answers["N1.director"] = pending
        component.request("send_data_grab")
        self.clock.advance(0.001)
        component.request("stop_grab")
        component.answers.clear()
        pending.callback((None, []))
        self.clock.advance(0.001)
        self.assertEqual(len(component.callbacks("set_data")), 1)
        self.assertFalse(actor.grabbing)

    def test_grabbing_until_the_acquisition_ends(self) -> None:
        """After stop_grab, C{grabbing} stays C{True} while an acquisition is in
        progress (its result is not sent); a send_data_grab meanwhile keeps the
        loop going instead of starting a second one."""
        component, actor = self.actor("spectro")
        acquisitions: list[Deferred[Any]] = []

        def slow_grab() -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            acquisitions.append(d)
            return d

        self.patch(self.detector, "grab", slow_grab)
        component.request("send_data_grab")
        component.request("stop_grab")
        self.assertTrue(actor.grabbing)
        acquisitions[0].callback(self.detector.export)
        self.assertFalse(actor.grabbing)
        self.assertEqual(component.callbacks("set_data"), [])
        component.request("send_data_grab")
        component.request("stop_grab")
        component.request("send_data_grab")
        self.assertEqual(len(acquisitions), 2)
        acquisitions[1].callback(self.detector.export)
        self.clock.advance(0.001)
        self.assertEqual(len(acquisitions), 3)
        self.assertEqual(len(component.callbacks("set_data")), 1)
        component.request("stop_grab")
        acquisitions[2].callback(self.detector.export)
        self.assertFalse(actor.grabbing)

    def test_offline_device_one_line(self) -> None:
        """A device going offline during a continuous grab ends it with one
        warning line, not a traceback."""
        from twisted_lab.errors import DeviceOffline
        from twisted.logger import capturedLogs
        component, actor = self.actor("spectro")
        self.patch(self.detector, "grab", lambda: fail(DeviceOffline("unplugged")))
        with capturedLogs() as events:
            component.request("send_data_grab")
        self.assertFalse(actor.grabbing)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertTrue([e for e in events if "unplugged" in str(e.get("error"))])

    def test_grab_error_while_sending_logged(self) -> None:
        """An acquisition failing while a frame is sent ends the loop; both are logged."""
        component, actor = self.actor("spectro")
        pending: Deferred[Any] = Deferred()
        component.answers["N1.director"] = pending
        component.request("send_data_grab")
        self.patch(self.detector, "grab", lambda: fail(ValueError("camera unplugged")))
        self.clock.advance(0.001)
        self.assertFalse(actor.grabbing)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        pending.callback((None, []))
        self.assertEqual(len(component.callbacks("set_data")), 1)

    def test_signal_grab_wrapped(self) -> None:
        """A device returning a bare Signal is sent as a one-signal DataToExport."""
        self.detector.export = Signal("spectro", [np.arange(3.0)])  # type: ignore[assignment]
        component, _ = self.actor("spectro")
        component.request("send_data_snap")
        export = serializall.decode(component.callbacks("set_data")[0][2][0])
        self.assertEqual((export.name, len(export)), ("spectro", 1))


class SettingsTests(_Base):
    def test_get_settings(self) -> None:
        """get_settings answers null, then set_director_settings carries the XML tree."""
        component, _ = self.actor("cam")
        self.assertIsNone(component.request("get_settings")["result"])
        [(_, params, frames)] = component.callbacks("set_director_settings")
        self.assertEqual(frames, [])
        xml = params["settings"]
        self.assertTrue(xml.startswith("<detector_settings type=\"group\""))
        self.assertIn('<exposure type="float" title="exposure" visible="1" removable="0" '
                      'readonly="0">', xml)
        self.assertIn(">0.1</exposure>", xml)
        self.assertIn('<cooled type="bool"', xml)
        self.assertIn(">0</cooled>", xml)
        self.assertIn('readonly="1"', xml)

    def test_set_info(self) -> None:
        """set_info(parameter=null, ParameterWithPath frame) sets the parameter and answers
        set_director_info with the new value."""
        component, _ = self.actor("cam")
        frame = serializall.encode(ParameterWithPath(
            ["exposure"], value_xml("exposure", "float", 0.25)))
        self.assertIsNone(component.request("set_info", {"parameter": None}, [frame])["result"])
        self.assertEqual(self.successResultOf(self.cam.get("exposure")), 0.25)
        [(_, params, frames)] = component.callbacks("set_director_info")
        self.assertEqual(params, {"parameter": None})
        back = serializall.decode(frames[0])
        self.assertEqual(read_parameter(back.xml), ("exposure", "float", 0.25))

    def test_set_info_invalid_value(self) -> None:
        """A value outside the limits is an error reply (-32602), nothing set."""
        component, _ = self.actor("cam")
        frame = serializall.encode(ParameterWithPath(["exposure"],
                                                     value_xml("exposure", "float", -1.0)))
        response = component.request("set_info", {"parameter": None}, [frame])
        self.assertEqual(response["error"]["code"], -32602)
        self.assertEqual(self.successResultOf(self.cam.get("exposure")), 0.1)

    def test_set_info_read_only(self) -> None:
        """A read-only parameter is refused in the reply."""
        component, _ = self.actor("cam")
        frame = serializall.encode(ParameterWithPath(["serial"], value_xml("serial", "str", "Y")))
        self.assertIn("ReadOnly", component.request("set_info", {"parameter": None},
                                                     [frame])["error"]["data"])

    def test_xml_round_trip(self) -> None:
        """settings_tree/value_xml give what read_parameter reads back."""
        self.assertEqual(read_parameter(value_xml("g", "int", 3)), ("g", "int", 3))
        self.assertEqual(read_parameter(value_xml("b", "bool", True)), ("b", "bool", True))
        self.assertEqual(read_parameter(value_xml("s", "str", "")), ("s", "str", ""))
        self.assertIn(b"<settings", ET.tostring(settings_tree("settings", [])))

    def test_list_values_never_evaluated(self) -> None:
        """A 'list' parameter value stays text (PyMoDAQ eval()s it; we never do)."""
        xml = b'<y type="list" title="y">__import__("os").system("x")</y>'
        self.assertEqual(read_parameter(xml)[2], '__import__("os").system("x")')


class CallbackFailureTests(_Base):
    def test_gone_director_dropped(self) -> None:
        """A director answering -32093 (unknown receiver) is dropped, as PyMoDAQ does."""
        component, actor = self.actor("stage")
        component.answers["N1.director"] = RemoteError(-32093, "Receiver is not in addresses list.")
        component.request("get_actuator_value")
        self.assertEqual(actor.remote_names, set())

    def test_timeout_keeps_director(self) -> None:
        """A callback timing out is logged; the director stays."""
        component, actor = self.actor("stage")
        component.answers["N1.director"] = DeviceTimeout("late")
        component.request("get_actuator_value")
        self.assertEqual(actor.remote_names, {"N1.director"})
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_vanished_director_stops_grab(self) -> None:
        """
        A director that set its name, started C{send_data_grab} and left
        (its callbacks now time out) is dropped after
        L{MAX_CALLBACK_FAILURES} failures in a row, and the grab loop ends.
        """
        component, actor = self.actor("spectro")
        component.request("send_data_grab")
        component.answers["N1.director"] = DeviceTimeout("late")
        for _ in range(20):
            self.clock.advance(0.001)
        self.assertEqual(actor.remote_names, set())
        self.assertFalse(actor.grabbing)
        self.assertEqual(len(component.callbacks("set_data")), 1 + MAX_CALLBACK_FAILURES)

    def test_failures_must_be_in_a_row(self) -> None:
        """A success between failures resets the count: the director stays."""
        component, actor = self.actor("stage")
        for _ in range(3 * MAX_CALLBACK_FAILURES):
            component.answers["N1.director"] = DeviceTimeout("late")
            for _ in range(MAX_CALLBACK_FAILURES - 1):
                component.request("get_actuator_value")
            component.answers.clear()
            component.request("get_actuator_value")
        self.assertEqual(actor.remote_names, {"N1.director"})

    def test_directors_capped(self) -> None:
        """At most L{MAX_DIRECTORS} remote names; another is refused with an error reply."""
        component, actor = self.actor("stage")
        for i in range(MAX_DIRECTORS - 1):
            self.assertIsNone(component.request("set_remote_name", {"name": f"N.d{i}"})["result"])
        reply = component.request("set_remote_name", {"name": "N.extra"})
        self.assertIn("error", reply)
        self.assertEqual(len(actor.remote_names), MAX_DIRECTORS)

    def test_every_director_called(self) -> None:
        """Callbacks go to every remote name."""
        component, _ = self.actor("stage")
        component.request("set_remote_name", {"name": "N2.other"})
        component.request("get_actuator_value")
        self.assertEqual(sorted(r for r, _, _ in component.callbacks("send_position")),
                         ["N1.director", "N2.other"])


class BadInputTests(_Base):
    def test_garbage_frame(self) -> None:
        """A malformed serializall frame is an error reply naming ProtocolError."""
        component, _ = self.actor("stage")
        response = component.request("move_abs", {"position": None}, [b"\x00\x00\x00\x09garbage"])
        self.assertEqual(response["error"]["code"], -32603)
        self.assertIn("ProtocolError", response["error"]["data"])
        self.assertEqual(self.stage.calls, [])

    def test_wrong_object_in_frame(self) -> None:
        """A frame holding a string instead of a DataActuator is refused (-32602)."""
        component, _ = self.actor("stage")
        response = component.request("move_abs", {"position": None}, [serializall.encode("x")])
        self.assertEqual(response["error"]["code"], -32602)

    def test_non_number_position(self) -> None:
        """A JSON position that is not a finite number is refused (-32602)."""
        component, _ = self.actor("stage")
        for bad in ("far", True, None, {"x": 1}):
            self.assertEqual(component.request("move_abs", {"position": bad})["error"]["code"],
                             -32602)
        self.assertEqual(self.stage.calls, [])

    def test_unknown_argument(self) -> None:
        """An unexpected argument is refused (-32602), as pyleco does for a TypeError."""
        component, _ = self.actor("stage")
        self.assertEqual(component.request("move_home", {"speed": 3})["error"]["code"], -32602)

    def test_detector_method_on_actuator(self) -> None:
        """send_data_snap on an actuator is refused at once."""
        component, _ = self.actor("stage")
        self.assertEqual(component.request("send_data_snap")["error"]["code"], -32602)

    def test_unknown_device(self) -> None:
        """A device missing from the registry is an UnknownDevice error reply."""
        component, _ = self.actor("ghost")
        self.assertIn("UnknownDevice", component.request("move_abs", {"position": 1})
                      ["error"]["data"])

    def test_set_info_without_frame(self) -> None:
        """set_info without its ParameterWithPath frame is refused."""
        component, _ = self.actor("cam")
        self.assertEqual(component.request("set_info", {"parameter": None})["error"]["code"],
                         -32602)

    def test_set_info_bad_xml(self) -> None:
        """set_info with XML that does not parse is refused with ProtocolError."""
        component, _ = self.actor("cam")
        frame = serializall.encode(ParameterWithPath(["exposure"], b"<exposure type='float'>"))
        self.assertIn("ProtocolError", component.request("set_info", {"parameter": None},
                                                         [frame])["error"]["data"])

    def test_failing_move_logged(self) -> None:
        """A move failing later is logged, not raised, and sends no set_move_done."""
        self.stage.instant = False
        component, _ = self.actor("stage")
        component.request("move_abs", {"position": 1.0})
        self.stage.pending[0][0].errback(RuntimeError("motor stalled"))
        self.assertEqual(component.callbacks("set_move_done"), [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
