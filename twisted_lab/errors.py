# -*- test-case-name: tests.test_errors -*-
"""
The error vocabulary of twisted_lab.

Every protocol maps these exceptions to its own wire form (a PLESTY error
reply, a JSON-RPC error object, a PyMoDAQ C{Info} message, an LA4 output
event).  Each class carries a stable C{code} string that protocols may put on
the wire, and a message a lab user can act on.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "LabError",
    "UnknownDevice",
    "UnknownParameter",
    "UnknownAction",
    "InvalidValue",
    "ReadOnly",
    "LeaseConflict",
    "DeviceBusy",
    "DeviceTimeout",
    "DeviceOffline",
    "DriverError",
    "ProtocolError",
    "ConfigError",
    "AccessDenied",
]


class LabError(Exception):
    """
    Base class of every error twisted_lab reports to a caller.

    @cvar code: a short stable identifier, used by protocols on the wire.
    """

    code = "LabError"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class UnknownDevice(LabError):
    """No device of that name is registered."""

    code = "UnknownDevice"

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        hint = ""
        if known is not None:
            hint = "; known devices: " + (", ".join(sorted(known)) or "none")
        super().__init__(f"unknown device {name!r}{hint}", device=name)
        self.name = name


class UnknownParameter(LabError):
    """The device has no parameter of that name."""

    code = "UnknownParameter"

    def __init__(self, device: str, name: str, known: list[str] | None = None) -> None:
        hint = ""
        if known is not None:
            hint = "; it has: " + (", ".join(sorted(known)) or "none")
        super().__init__(
            f"device {device!r} has no parameter {name!r}{hint}",
            device=device,
            parameter=name,
        )
        self.device = device
        self.name = name


class UnknownAction(LabError):
    """The device has no action of that name (or it is private)."""

    code = "UnknownAction"

    def __init__(self, device: str, name: str, known: list[str] | None = None) -> None:
        hint = ""
        if known is not None:
            hint = "; it has: " + (", ".join(sorted(known)) or "none")
        super().__init__(
            f"device {device!r} has no action {name!r}{hint}", device=device, action=name
        )
        self.device = device
        self.name = name


class InvalidValue(LabError):
    """A value has the wrong type, is out of limits, or is not an allowed choice."""

    code = "InvalidValue"


class ReadOnly(LabError):
    """The parameter can be read but not written."""

    code = "ReadOnly"

    def __init__(self, device: str, name: str) -> None:
        super().__init__(
            f"parameter {name!r} of device {device!r} is read-only",
            device=device,
            parameter=name,
        )


class LeaseConflict(LabError):
    """
    A resource is leased by another owner.

    @ivar resource: the resource asked for.
    @ivar holder: the owner holding it, as a string.
    """

    code = "LeaseConflict"

    def __init__(self, resource: str, holder: str) -> None:
        super().__init__(
            f"resource {resource!r} is locked by {holder}", resource=resource, holder=holder
        )
        self.resource = resource
        self.holder = holder


class DeviceBusy(LabError):
    """The device is still running an earlier call (for example one that timed out)."""

    code = "DeviceBusy"


class DeviceTimeout(LabError):
    """A device call did not finish before its deadline."""

    code = "DeviceTimeout"


class DeviceOffline(LabError):
    """The device (or the remote peer behind it) is not reachable now."""

    code = "DeviceOffline"


class DriverError(LabError):
    """The instrument driver raised; the message carries its reason."""

    code = "DriverError"


class ProtocolError(LabError):
    """A peer sent something the protocol does not allow."""

    code = "ProtocolError"


class ConfigError(LabError):
    """
    The configuration is invalid.

    The message names the file, the key and the reason.
    """

    code = "ConfigError"

    def __init__(self, reason: str, file: str | None = None, key: str | None = None) -> None:
        where = file or "<config>"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {reason}", file=file, key=key)
        self.file = file
        self.key = key
        self.reason = reason


class AccessDenied(LabError):
    """
    The client's role does not allow the request (see L{twisted_lab.access}).

    @ivar role: the client's role.
    @ivar needed: the role the request needs.
    """

    code = "AccessDenied"

    def __init__(self, message: str, role: str = "", needed: str = "") -> None:
        super().__init__(message, role=role, needed=needed)
        self.role = role
        self.needed = needed
