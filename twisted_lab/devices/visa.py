# -*- test-case-name: tests.test_devices_visa -*-
"""
VISA instruments (pyvisa), driven on their own worker thread.

A L{VisaDevice} opens one pyvisa resource on a L{DriverRunner} thread and
offers:

  - the actions C{identity} (C{*IDN?}), C{write(command)} and
    C{query(command)}: the only way to send caller-supplied text;
  - parameters mapped to SCPI commands by a small declarative table
    (L{ScpiParameter}): a query command (C{"VOLT?"}) and an optional write
    template (C{"VOLT {value}"}).  Values are validated first and only
    numbers (or one of the table's own choices) are ever formatted into a
    template.

The device is an L{IService}: starting it starts the worker thread and opens
the resource; stopping it closes the resource and joins the thread.

For tests and demos, C{twisted_lab/devices/sim_instruments.yaml} describes
simulated instruments for pyvisa-sim: use C{backend=SIM_BACKEND}.
"""
from __future__ import annotations

import os
import string
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from twisted.application.service import IService

from twisted_lab.description import Action, Argument, Parameter
from twisted_lab.devices.base import BaseDevice
from twisted_lab.drivers import DriverRunner, OnWorkerThread
from twisted_lab.errors import ConfigError, DeviceOffline, DriverError, InvalidValue

__all__ = ["VisaDevice", "ScpiParameter", "SIM_INSTRUMENTS", "SIM_BACKEND", "parse_table"]

#: The pyvisa-sim instrument file shipped with twisted_lab.
SIM_INSTRUMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "sim_instruments.yaml")
#: The pyvisa backend string that uses L{SIM_INSTRUMENTS}.
SIM_BACKEND = SIM_INSTRUMENTS + "@sim"

_SCPI_TYPES = ("float", "int", "bool", "str")
_TRUE = ("1", "ON", "TRUE", "YES")
_FALSE = ("0", "OFF", "FALSE", "NO")


@dataclass(frozen=True)
class ScpiParameter:
    """
    One parameter of a VISA device, mapped to SCPI commands.

    @ivar name: the parameter name.
    @ivar type: C{float}, C{int}, C{bool} or C{str}.
    @ivar query: the query command (C{"VOLT?"}).
    @ivar write: the write template (C{"VOLT {value}"}, C{"VOLT {value:.3f}"}),
        or C{""} when read-only.  Its only field is C{value}.
    @ivar units: units.
    @ivar readonly: read-only even if a template is given.
    @ivar minimum: lowest value.
    @ivar maximum: highest value.
    @ivar choices: allowed values (required to write a C{str} parameter).
    @ivar doc: one line.
    """

    name: str
    query: str
    type: str = "float"
    write: str = ""
    units: str = ""
    readonly: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if not self.name or not self.name.isidentifier() or self.name.startswith("_"):
            raise ConfigError(f"{where}: the name must be a public identifier")
        if self.type not in _SCPI_TYPES:
            raise ConfigError(f"{where}: type must be one of {', '.join(_SCPI_TYPES)}, "
                              f"got {self.type!r}")
        if not self.query or "\n" in self.query or "{" in self.query:
            raise ConfigError(f"{where}: query must be one SCPI command without fields, "
                              f"got {self.query!r}")
        if self.write:
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(self.write)
                          if f is not None]
            except ValueError as e:
                raise ConfigError(f"{where}: bad write template {self.write!r}: {e}") from None
            if fields != ["value"]:
                raise ConfigError(f"{where}: the write template must contain exactly one "
                                  f"'{{value}}' field (optionally '{{value:FORMAT}}'), "
                                  f"got {self.write!r}")
            if "\n" in self.write:
                raise ConfigError(f"{where}: the write template must be one line")
            if self.type == "str" and not self.choices and not self.readonly:
                raise ConfigError(f"{where}: a writable str parameter needs 'choices' "
                                  f"(free text is only sent through the write action)")
            try:
                self.format(self.parameter().validate(self._example()))
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{where}: the write template {self.write!r} cannot "
                                  f"format a {self.type}: {e}") from None

    @property
    def writable(self) -> bool:
        """C{True} when it has a write template and is not read-only."""
        return bool(self.write) and not self.readonly

    def _example(self) -> Any:
        if self.choices:
            return self.choices[0]
        if self.type == "bool":
            return True
        if self.minimum is not None:
            return int(self.minimum) if self.type == "int" else self.minimum
        return {"float": 1.0, "int": 1, "str": ""}[self.type]

    def parameter(self) -> Parameter:
        """The device-model L{Parameter}."""
        return Parameter(self.name, self.type, self.units, readonly=not self.writable,
                         minimum=self.minimum, maximum=self.maximum, choices=self.choices,
                         doc=self.doc or f"{self.query}")

    def format(self, value: Any) -> str:
        """
        The write command for a validated value (numbers or a choice only).
        """
        if self.type == "bool":
            value = int(bool(value))
        elif self.type == "str":
            if not self.choices or value not in self.choices:
                raise InvalidValue(f"{self.name}: refusing to send {value!r}; not a choice")
        return self.write.format(value=value)

    def parse(self, response: str, device: str) -> Any:
        """Convert a query response to the parameter's type, or raise L{DriverError}."""
        text = response.strip()
        try:
            if self.type == "float":
                return float(text)
            if self.type == "int":
                number = float(text)
                if not number.is_integer():
                    raise ValueError(text)
                return int(number)
            if self.type == "bool":
                upper = text.upper()
                if upper in _TRUE:
                    return True
                if upper in _FALSE:
                    return False
                raise ValueError(text)
            return text
        except ValueError:
            raise DriverError(
                f"device {device!r}: the answer {response!r} to {self.query!r} is not a "
                f"{self.type} (parameter {self.name!r})") from None


def parse_table(entries: Sequence[Mapping[str, Any]]) -> list[ScpiParameter]:
    """
    Build L{ScpiParameter}s from config tables.

    @param entries: tables with keys C{name}, C{query}, and optionally
        C{type}, C{write}, C{units}, C{readonly}, C{minimum}, C{maximum},
        C{choices}, C{doc}.
    @raise ConfigError: a bad entry (naming it).
    """
    out = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        data = dict(entry)
        if data.get("choices") is not None:
            data["choices"] = tuple(data["choices"])
        for key in ("minimum", "maximum"):
            if key in data and data[key] is not None and not isinstance(data[key], (int, float)):
                raise ConfigError(f"parameters[{i}].{key} must be a number, got {data[key]!r}")
        try:
            parameter = ScpiParameter(**data)
        except TypeError as e:
            raise ConfigError(f"parameters[{i}]: {e}") from None
        if parameter.name in seen or parameter.name in VisaDevice.RESERVED:
            raise ConfigError(f"parameters[{i}]: the name {parameter.name!r} is used twice "
                              f"or reserved")
        seen.add(parameter.name)
        out.append(parameter)
    return out


def _default_resource_manager(backend: str) -> Any:
    import pyvisa

    return pyvisa.ResourceManager(backend)


@implementer(IService)
class VisaDevice(OnWorkerThread, BaseDevice):
    """
    A SCPI instrument through pyvisa, on its own worker thread.

    @ivar resource: the VISA resource name.
    @ivar backend: the pyvisa backend (C{"@py"}, C{"@ivi"}, C{"<file>@sim"}).
    @ivar runner: the L{DriverRunner} every pyvisa call goes through.
    """

    log = Logger()
    name: str  # the device's (Service's says Optional)
    doc = "VISA instrument"
    RESERVED = ("identity", "write", "query", "resource")

    def __init__(self, name: str, reactor: Any, resource: str, backend: str = "@py",
                 parameters: Sequence[ScpiParameter | Mapping[str, Any]] = (),
                 timeout: float = 5.0, read_termination: str = "\n",
                 write_termination: str = "\n", resource_manager: Any = None) -> None:
        """
        @param resource: the VISA resource name (C{"TCPIP::10.0.0.5::INSTR"}).
        @param backend: the pyvisa backend.
        @param parameters: the SCPI parameter table.
        @param timeout: the pyvisa I/O timeout, in seconds; each call's
            deadline on the worker thread is one second longer, so that the
            driver reports its own timeout first.
        @param resource_manager: a callable C{backend -> ResourceManager}
            (for tests); default C{pyvisa.ResourceManager}.
        """
        self.resource = resource
        self.backend = backend
        self.timeout = float(timeout)
        self._terminations = (read_termination, write_termination)
        self._rm_factory = resource_manager or _default_resource_manager
        self._rm: Any = None
        self._instrument: Any = None
        self._open_error: str | None = None
        self.runner = DriverRunner(reactor, name, deadline=self.timeout + 1.0)
        table = [p if isinstance(p, ScpiParameter) else parse_table([p])[0] for p in parameters]
        self.scpi = {p.name: p for p in table}
        model = [p.parameter() for p in table]
        model.append(Parameter("resource", "str", readonly=True, default=resource,
                               doc="VISA resource name."))
        budget = self.runner.deadline
        actions = [
            Action("identity", (), "Ask *IDN?.", mutating=False, budget=budget),
            Action("write", (Argument("command", "str"),), "Send one command line.",
                   budget=budget),
            Action("query", (Argument("command", "str"),),
                   "Send one command line and read the answer.", budget=budget),
        ]
        BaseDevice.__init__(self, name, model, actions)

    # -- IService -------------------------------------------------------------

    def startService(self) -> None:
        """Start the worker thread and open the resource on it."""
        OnWorkerThread.startService(self)
        d = self.runner.run(self._open, timeout=max(self.timeout + 1.0, 10.0))

        def failed(f: Any) -> None:
            self._open_error = f.getErrorMessage()
            self.log.error("{device}: cannot open {resource}: {reason}", device=self.name,
                           resource=self.resource, reason=self._open_error)

        d.addCallbacks(lambda _: self.log.info("{device}: opened {resource}",
                                               device=self.name, resource=self.resource),
                       failed)

    def stopService(self) -> Deferred[None]:
        """Close the resource and join the worker thread."""
        Service.stopService(self)
        if not self.runner.started:
            return succeed(None)
        closing = self.runner.run(self._close)
        closing.addErrback(lambda f: self.log.warn("{device}: close failed: {reason}",
                                                   device=self.name,
                                                   reason=f.getErrorMessage()))
        return closing.addBoth(lambda _: self.runner.stop())

    # -- on the worker thread -------------------------------------------------

    def _open(self) -> None:
        self._open_error = None
        self._rm = self._rm_factory(self.backend)
        read, write = self._terminations
        self._instrument = self._rm.open_resource(
            self.resource, read_termination=read, write_termination=write,
            timeout=int(self.timeout * 1000))

    def _close(self) -> None:
        instrument, self._instrument = self._instrument, None
        rm, self._rm = self._rm, None
        if instrument is not None:
            instrument.close()
        if rm is not None:
            rm.close()

    def _opened(self) -> Any:
        if self._instrument is None:
            reason = self._open_error or "the device is not started"
            raise DriverError(f"device {self.name!r}: {self.resource} is not open: {reason}")
        return self._instrument

    def _query(self, command: str) -> str:
        return str(self._opened().query(command))

    def _write(self, command: str) -> None:
        self._opened().write(command)

    # -- device model ---------------------------------------------------------

    def _run(self, fn: Any, *args: Any) -> Deferred[Any]:
        if not self.runner.started:
            return fail(DeviceOffline(f"device {self.name!r} is not started"))
        return self.runner.run(fn, *args)

    def read_parameter(self, name: str) -> Any:
        if name == "resource":
            return self.resource
        spec = self.scpi[name]
        return self._run(self._query, spec.query).addCallback(spec.parse, self.name)

    def write_parameter(self, name: str, value: Any) -> Any:
        spec = self.scpi[name]
        command = spec.format(value)
        return self._run(self._write, command).addCallback(lambda _: value)

    @staticmethod
    def _one_line(command: str, what: str) -> str:
        if not command.strip():
            raise InvalidValue(f"{what}: the command is empty")
        if "\n" in command or "\r" in command:
            raise InvalidValue(f"{what}: send one command line at a time (no newlines)")
        return command

    def action_identity(self) -> Deferred[str]:
        return self._run(self._query, "*IDN?").addCallback(str.strip)

    def action_write(self, command: str) -> Deferred[None]:
        self._one_line(command, f"{self.name}.write")
        return self._run(self._write, command)

    def action_query(self, command: str) -> Deferred[str]:
        self._one_line(command, f"{self.name}.query")
        return self._run(self._query, command).addCallback(str.strip)
