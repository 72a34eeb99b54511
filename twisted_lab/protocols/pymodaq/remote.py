# -*- test-case-name: tests.test_pymodaq_server -*-
"""
Devices imported from PyMoDAQ clients that connected to our server role.

A L{RemoteGrabber} (a C{GRABBER} client) or L{RemoteActuator} (an
C{ACTUATOR} client) mirrors the client's settings as parameters (setting one
sends C{set_info}) and turns each registry call into a command whose reply it
awaits with a deadline.  PyMoDAQ replies carry no request id, so the waiters
of each reply kind form a queue; a call that timed out keeps its place so
that its late reply is not taken for the next call's.
"""
from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Any, Sequence

from twisted.internet.defer import Deferred, fail, succeed

from twisted_lab.data import Export, Signal
from twisted_lab.description import Description, Parameter
from twisted_lab.devices.base import BaseActuator, BaseDetector, BaseDevice
from twisted_lab.devices.remote import RemoteDeviceMixin
from twisted_lab.errors import DeviceOffline, DeviceTimeout
from twisted_lab.events import DATA, LabEvent
from twisted_lab.formats.pymodaq.settings import RemoteSetting, setting_xml
from twisted_lab.waiting import PendingCalls

if TYPE_CHECKING:
    from twisted_lab.protocols.pymodaq.imports import PyMoDAQServerProtocol

__all__ = ["PyMoDAQRemoteMixin", "RemoteGrabber", "RemoteActuator", "INFO_PREFIX", "MAX_INFOS"]

#: Free-form C{Info} entries become read-only parameters named C{info.<name>}.
INFO_PREFIX = "info."
#: Distinct C{Info} names a client may make a device remember; later new
#: names are ignored (their values are not stored).
MAX_INFOS = 1024


class PyMoDAQRemoteMixin(RemoteDeviceMixin):
    """
    What both remote device kinds share: the connection, settings and replies
    (following the link is L{twisted_lab.devices.remote.RemoteDeviceMixin}'s).

    @ivar connection: the live L{PyMoDAQServerProtocol}, or C{None} while offline.
    @ivar client_type: C{"GRABBER"} or C{"ACTUATOR"}.
    @ivar peer: the address of the client (latest connection).
    """

    connection: PyMoDAQServerProtocol | None
    name: str
    _values: dict[str, Any]

    def _init_remote(self, client_type: str, clock: Any, timeout: float) -> None:
        self.client_type = client_type
        self.connection = None
        self.peer = ""
        self._clock = clock
        self.timeout = timeout
        self._settings: dict[str, RemoteSetting] = {}
        self._infos: dict[str, str] = {}
        #: the C{info.<name>} parameters, built once per name
        self._info_parameters: dict[str, Parameter] = {}
        #: the description is rebuilt when next read, not on each new name
        #: (a client sending n names then costs O(n), not O(n²))
        self._stale = False
        self._current: Description | None = None
        #: the calls awaiting a reply (keyed by a sequence number), and per
        #: reply kind the numbers in the order sent: a call that timed out or
        #: was cancelled keeps its place, so its late reply is not taken for
        #: the next call's
        self._calls: PendingCalls[int] = PendingCalls(clock)
        self._replies: dict[str, deque[int]] = {}
        self._sequence = itertools.count()

    # -- settings --------------------------------------------------------------

    def replace_settings(self, settings: Sequence[RemoteSetting]) -> None:
        """Mirror a whole settings tree (C{Infos})."""
        self._settings = {s.parameter.name: s for s in settings}
        self._rebuild()
        for setting in settings:
            self.changed(setting.parameter.name, setting.value)  # type: ignore[attr-defined]

    def update_settings(self, settings: Sequence[RemoteSetting]) -> None:
        """Update (or add) some settings (C{Info_xml})."""
        new = [s for s in settings if s.parameter.name not in self._settings]
        for setting in settings:
            self._settings[setting.parameter.name] = setting
        if new:
            self._rebuild()
        for setting in settings:
            self._values[setting.parameter.name] = setting.value
            self.changed(setting.parameter.name, setting.value)  # type: ignore[attr-defined]

    def update_info(self, name: str, value: str) -> bool:
        """
        Record a free-form C{Info} entry.

        @return: C{False} when C{name} is new and the device already holds
            L{MAX_INFOS} names (the entry is then dropped).
        """
        if name not in self._infos:
            if len(self._infos) >= MAX_INFOS:
                return False
            self._info_parameters[name] = Parameter(INFO_PREFIX + name, "str", readonly=True,
                                                    doc="Info from the client")
            self._stale = True
        self._infos[name] = value
        self._values[INFO_PREFIX + name] = value
        self.changed(INFO_PREFIX + name, value)  # type: ignore[attr-defined]
        return True

    def _parameters(self) -> list[Parameter]:
        parameters = [s.parameter for s in self._settings.values()]
        parameters += self._info_parameters.values()
        return parameters

    def _rebuild(self) -> None:
        for setting in self._settings.values():
            self._values[setting.parameter.name] = setting.value
        self._stale = True

    @property
    def _description(self) -> Description:
        """The description, rebuilt here if the parameters changed since."""
        current = self._current
        assert current is not None
        if self._stale:
            self._stale = False
            current = self._current = self._build_description(  # type: ignore[attr-defined]
                self._parameters(), list(current.actions.values()), current.doc)
        return current

    @_description.setter
    def _description(self, description: Description) -> None:
        self._current = description
        self._stale = False

    def forget(self) -> None:
        """Drop what the client made us remember (settings, infos): on expiry."""
        self._settings = {}
        self._infos = {}
        self._info_parameters = {}
        self._values = {}
        self._rebuild()

    def write_parameter(self, name: str, value: Any) -> Any:
        """Send C{set_info} with the new value (PyMoDAQ sends no reply)."""
        setting = self._settings[name]
        connection = self._live()
        connection.send("set_info", list(setting.path), setting_xml(setting, value))
        self._values[name] = value
        return None

    # -- commands and replies --------------------------------------------------

    def _live(self) -> PyMoDAQServerProtocol:
        if self.connection is None:
            raise DeviceOffline(f"PyMoDAQ client {self.name!r} is not connected")
        return self.connection

    def command(self, command: str, reply: str | None, *args: Any) -> Deferred[Any]:
        """
        Send a command; fire with the payload of its C{reply} (or C{None}).

        @raise DeviceTimeout: (as a failure) no reply within C{timeout}.
        """
        connection = self._live()
        if reply is None:
            connection.send(command, *args)
            return succeed(None)
        key = next(self._sequence)
        d = self._calls.add(key, self.timeout, lambda: DeviceTimeout(
            f"PyMoDAQ client {self.name!r} did not answer {command} within {self.timeout} s"))
        queue = self._replies.get(reply)
        if queue is None:
            queue = self._replies[reply] = deque()
        queue.append(key)
        connection.send(command, *args)
        return d

    def reply_received(self, reply: str, value: Any) -> bool:
        """
        Give a reply to the oldest call waiting for it.

        @return: C{False} when no call waited (an unsolicited reply).
        """
        queue = self._replies.get(reply)
        if not queue:
            return False
        # a call that timed out or was cancelled is no longer pending: its
        # late reply ends here
        self._calls.resolve(queue.popleft(), value)
        return True

    def attach(self, connection: PyMoDAQServerProtocol) -> None:
        """A (new) connection serves this device: go online."""
        self.connection = connection
        self.peer = connection.peer
        self.link_up()

    def detach(self, connection: PyMoDAQServerProtocol) -> None:
        """Its connection is gone: go offline, fail the pending calls."""
        if self.connection is not connection:
            return
        self.connection = None
        self.link_down(f"PyMoDAQ client {self.name!r} disconnected")

    def fail_pending(self, error: Exception) -> None:
        """Fail the calls awaiting a reply; a reply arriving later is unsolicited."""
        self._replies = {}
        self._calls.fail_all(error)


class RemoteGrabber(PyMoDAQRemoteMixin, BaseDetector):
    """
    A PyMoDAQ C{GRABBER} client as a detector: C{grab} sends C{Send Data xD}.

    @param dim: the suffix of the grab command (C{"2D"}; PyMoDAQ clients grab
        on any of them).
    """

    def __init__(self, name: str, clock: Any, timeout: float = 10.0, dim: str = "2D") -> None:
        self._init_remote("GRABBER", clock, timeout)
        self.grab_command = f"Send Data {dim}"
        BaseDetector.__init__(self, name, doc="A PyMoDAQ GRABBER client")

    def _grab(self) -> Deferred[Export]:
        return self.command(self.grab_command, "Done")

    def data_received(self, export: Export) -> None:
        """An unsolicited C{Done}: report it as data."""
        self.emit(LabEvent(DATA, self.name, None, export))


class RemoteActuator(PyMoDAQRemoteMixin, BaseActuator):
    """
    A PyMoDAQ C{ACTUATOR} client: moves are C{move_*} commands answered by
    C{move_done}; the position is C{get_actuator_value} → C{position_is}.
    """

    def __init__(self, name: str, clock: Any, timeout: float = 10.0) -> None:
        self._init_remote("ACTUATOR", clock, timeout)
        self.current: float | None = None
        BaseActuator.__init__(self, name, doc="A PyMoDAQ ACTUATOR client")

    def replace_settings(self, settings: Sequence[RemoteSetting]) -> None:
        """Mirror the settings; take the position units from C{units}."""
        super().replace_settings(settings)
        self._units_from_settings()

    def update_settings(self, settings: Sequence[RemoteSetting]) -> None:
        """Update settings; C{units} changes the position units."""
        super().update_settings(settings)
        self._units_from_settings()

    def _units_from_settings(self) -> None:
        units = self._settings.get("units")
        if units is not None and isinstance(units.value, str) and units.value != self.units:
            self.units = units.value
            self._rebuild()

    def _build_description(self, parameters: Any, actions: Any, doc: str) -> Description:
        return Description.build(self.name, parameters, actions, kind=self.kind, doc=doc,
                                 units=self.units)

    def _target(self, value: float) -> Signal:
        return Signal.scalar(self.name, float(value), units=self.units, kind="DataActuator")

    def _moved(self, reply: Deferred[Any]) -> Deferred[float]:
        return super()._moved(reply.addCallback(self._position_of))

    def _position_of(self, signal: Signal) -> float:
        self.current = signal.value()
        return self.current

    def _move_abs(self, position: float) -> Deferred[Any]:
        return self.command("move_abs", "move_done", self._target(position))

    def _move_rel(self, step: float) -> Deferred[Any]:
        return self.command("move_rel", "move_done", self._target(step))

    def _move_home(self) -> Deferred[Any]:
        return self.command("move_home", "move_done")

    def _position(self) -> Deferred[float]:
        return self.command("get_actuator_value", "position_is").addCallback(self._position_of)

    def position(self) -> Deferred[float]:
        """
        Fires with the current position: the C{position} action without the
        generic action dispatch (the hot path of position polling).
        """
        if not self.online or self.connection is None:
            return fail(DeviceOffline(f"device {self.name!r} is offline"))
        return self._position()

    def _stop(self) -> Any:
        self.command("stop_motion", None)
        return self.current if self.current is not None else float("nan")

    def position_received(self, signal: Signal) -> None:
        """An unsolicited position: remember and report it."""
        self.emit(LabEvent(DATA, self.name, "position", self._position_of(signal)))


RemoteDevice = BaseDevice  # for type annotations of either kind
