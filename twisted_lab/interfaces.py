# -*- test-case-name: tests.test_devices_base -*-
"""
The interfaces every device and every plugin provides.

Every device method returns a L{Deferred}; values crossing a protocol are
plain Python/numpy values, L{twisted_lab.data.Signal} or
L{twisted_lab.data.Export}.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

__all__ = ["IDevice", "IActuator", "IDetector", "IProtocolPlugin", "IDevicePlugin", "IWireReport"]


class IDevice(Interface):
    """
    A self-describing instrument (local, simulated or remote).
    """

    name = Attribute("The device name, unique in a registry (C{str}).")
    online = Attribute("C{True} while the device (or its remote peer) is reachable.")
    busy = Attribute("C{True} while the device runs a call that overran its deadline.")

    def describe() -> Deferred[Any]:
        """
        @return: a L{Deferred} firing with a L{twisted_lab.description.Description}.
        """

    def get(name: str) -> Deferred[Any]:
        """
        Read a parameter.

        @param name: the parameter name.
        @return: a L{Deferred} firing with its value; fails with
            L{twisted_lab.errors.UnknownParameter}, L{DeviceOffline}, ...
        """

    def set(name: str, value: Any) -> Deferred[Any]:
        """
        Write a parameter.

        @return: a L{Deferred} firing with the value actually set; fails with
            L{UnknownParameter}, L{ReadOnly} or L{InvalidValue}.
        """

    def call(action: str, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """
        Run an action.

        @return: a L{Deferred} firing with its result; fails with
            L{UnknownAction} or L{InvalidValue}.
        """

    def subscribe(listener: Callable[[Any], None]) -> Callable[[], None]:
        """
        Call C{listener(event)} with each L{twisted_lab.events.LabEvent}.

        @return: a callable that unsubscribes.
        """


class IActuator(IDevice):
    """
    A device that moves (stage, rotation mount, piezo).
    """

    units = Attribute("The position units (C{str}).")

    def move_abs(position: float) -> Deferred[float]:
        """
        Move to an absolute position.

        @return: a L{Deferred} firing with the position reached (C{float}).
        """

    def move_rel(step: float) -> Deferred[float]:
        """
        Move by a step.

        @return: a L{Deferred} firing with the position reached.
        """

    def move_home() -> Deferred[float]:
        """
        Move to the home position.

        @return: a L{Deferred} firing with the position reached.
        """

    def stop() -> Deferred[float]:
        """
        Stop any motion; a pending move fires with the position where it stopped.

        @return: a L{Deferred} firing with the current position.
        """

    def position() -> Deferred[float]:
        """
        @return: a L{Deferred} firing with the current position (C{float}).
        """


class IDetector(IDevice):
    """
    A device that acquires data (power meter, spectrometer, camera).
    """

    dims = Attribute("The dimensionalities it produces, e.g. C{('Data2D',)}.")

    def grab() -> Deferred[Any]:
        """
        Acquire once.

        @return: a L{Deferred} firing with a L{twisted_lab.data.Export}.
        """


class IDevicePlugin(Interface):
    """
    A device type that a config file can name (C{type = "sim.stage"}).
    """

    type_name = Attribute("The name used in config files (C{str}).")
    description = Attribute("One line for the configuration reference (C{str}).")
    options = Attribute(
        "The accepted options: a mapping of name to L{twisted_lab.options.Option}."
    )

    def make_device(name: str, options: dict[str, Any], reactor: Any) -> Any:
        """
        Build a device.

        @param name: the device name.
        @param options: the validated options (defaults filled in).
        @param reactor: the reactor (or a clock in tests).
        @return: an L{IDevice} provider.  If it also provides
            L{twisted.application.service.IService}, it is started and stopped
            with the lab.
        """


class IProtocolPlugin(Interface):
    """
    A wire protocol that serves the registry (C{[pymodaq]}, C{[leco]}, ...).
    """

    name = Attribute("The config section name (C{str}).")
    description = Attribute("One line for the configuration reference (C{str}).")
    options = Attribute(
        "The accepted options: a mapping of name to L{twisted_lab.options.Option}."
    )

    def default_section(device_names: list[str]) -> dict[str, Any]:
        """
        The section the simulated lab uses when no config file is given.

        @param device_names: the devices of the simulated lab.
        @return: a C{dict} of options (validated like a config file section).
        """

    def make_service(registry: Any, section: dict[str, Any], reactor: Any) -> Any:
        """
        Build the service that runs this protocol.

        @param registry: the L{twisted_lab.registry.DeviceRegistry}.
        @param section: the validated options (defaults filled in).
        @param reactor: the reactor.
        @return: an L{twisted.application.service.IService}.
        """


class IWireReport(Interface):
    """
    A protocol service that can say what it listens on and who is connected.

    Protocol-neutral: a console (the C{[web]} section) walks the lab's
    service tree and asks every service providing this for its report; the
    registry and the protocols never learn who reads it.
    """

    def wire_report() -> dict[str, Any]:
        """
        What this service has on the wire now.

        @return: a JSON-friendly C{dict} with C{"listeners"} (a list of
            address strings: C{"tcp://127.0.0.1:5555"}) and C{"peers"} (a list
            of C{dict}s, each with at least C{"peer"} (an id or address) and
            C{"state"}, and optionally C{"device"} and C{"counters"} (a
            C{dict} of names to numbers)).
        """
