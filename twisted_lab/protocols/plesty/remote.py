# -*- test-case-name: tests.test_plesty_client -*-
"""
Importing a PLESTY server as a registry device.

L{description_from_describe} turns a C{describe} result (plesty-lib's
C{methods} + C{doc}, or a twisted_lab server's exact description) into a
L{Description}; L{make_remote_device} builds the device (an actuator or a
detector when the remote twisted_lab device is one); L{PlestyImportService}
connects, registers the device, keeps it alive with C{ping}, and marks it
offline/online as the server goes and comes back (same name, same object).
"""
from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from twisted_lab.description import Action, Argument, Description, Parameter
from twisted_lab.devices.base import BaseActuator, BaseDetector, BaseDevice
from twisted_lab.devices.remote import RemoteDeviceMixin
from twisted_lab.errors import DeviceTimeout, LabError
from twisted_lab.protocols.plesty.imports import PlestyClient
from twisted_lab.registry import DeviceRegistry

__all__ = ["description_from_describe", "make_remote_device", "PlestyRemoteDevice",
           "PlestyImportService"]

_TYPES = {"float": "float", "int": "int", "bool": "bool", "str": "str", "list": "list",
          "dict": "dict", "ndarray": "array", "array": "array"}

#: plesty-lib's standard methods that only read.
_READ_ONLY_METHODS = {"identity", "check_errors", "check_operatability", "get_config_list",
                      "get_data_path", "state", "preflight", "doc_model", "position", "stop",
                      "grab"}
#: Methods that are the transport of parameters, not actions.
_NOT_ACTIONS = {"query", "write"}


def _parameter_from_dict(name: str, d: dict[str, Any]) -> Parameter:
    return Parameter(name, d["type"], d.get("units", ""), bool(d.get("readonly")),
                     d.get("minimum"), d.get("maximum"),
                     tuple(d["choices"]) if d.get("choices") is not None else None,
                     d.get("doc", ""))


def _description_from_lab(name: str, lab: dict[str, Any]) -> Description:
    parameters = [_parameter_from_dict(n, p) for n, p in lab.get("parameters", {}).items()]
    actions = [
        Action(n, tuple(Argument(arg["name"], arg.get("type", "any"),
                                 Argument.REQUIRED if arg.get("required", True)
                                 else arg.get("default"), arg.get("units", ""))
                        for arg in a.get("arguments", [])),
               a.get("doc", ""), bool(a.get("mutating", True)))
        for n, a in lab.get("actions", {}).items()
    ]
    return Description.build(name, parameters, actions, kind=lab.get("kind", "device"),
                             doc=lab.get("doc", ""), units=lab.get("units", ""),
                             dims=tuple(lab.get("dims", ())))


def _plesty_parameter(key: str, entry: dict[str, Any] | None) -> Parameter:
    if entry is None:
        return Parameter(key, "any")
    options = entry.get("options")
    return Parameter(
        key, _TYPES.get(str(entry.get("dtype")), "any"), entry.get("unit") or "",
        bool(entry.get("read_only")),
        entry.get("min_value") if isinstance(entry.get("min_value"), (int, float)) else None,
        entry.get("max_value") if isinstance(entry.get("max_value"), (int, float)) else None,
        tuple(options) if isinstance(options, list) else None, entry.get("description") or "",
        entry.get("default"))


def description_from_describe(name: str, described: dict[str, Any],
                              config_list: list[str] | None = None) -> Description:
    """
    A L{Description} from a PLESTY C{describe} result.

    @param name: the local device name.
    @param described: C{{"methods": [...], "doc": {...}}} (C{doc} may be
        absent or C{null}); a twisted_lab server adds C{"twisted_lab"}, which
        is used as is.
    @param config_list: the server's C{get_config_list} answer, which names
        grouped parameters as C{"PREFIX.name"}; without it, the C{doc}'s.
    """
    lab = described.get("twisted_lab")
    if isinstance(lab, dict):
        return _description_from_lab(name, lab)
    doc: dict[str, Any] = described["doc"] if isinstance(described.get("doc"), dict) else {}
    groups: dict[str, Any] = (doc["parameters"] if isinstance(doc.get("parameters"), dict)
                              else {})
    by_group: dict[str, dict[str, dict[str, Any]]] = {
        str(g).lower(): {e["name"]: e for e in entries if isinstance(e, dict) and "name" in e}
        for g, entries in groups.items() if isinstance(entries, list)}
    parameters: list[Parameter] = []
    if config_list is not None:
        for key in config_list:
            if "." in key:
                prefix, short = key.split(".", 1)
                entry = by_group.get(prefix.lower(), {}).get(short)
                if entry is None:
                    entry = next((g[short] for n, g in by_group.items()
                                  if n != "default" and short in g), None)
            else:
                entry = by_group.get("default", {}).get(key)
            parameters.append(_plesty_parameter(key, entry))
    else:
        for group, entries in by_group.items():
            for short, entry in entries.items():
                key = short if group == "default" else f"{group.upper()}.{short}"
                parameters.append(_plesty_parameter(key, entry))
    signatures: dict[str, dict[str, Any]] = {}
    for section in ("standard_methods", "functions"):
        for entry in doc.get(section) or []:
            if isinstance(entry, dict) and "name" in entry:
                signatures[entry["name"]] = entry
    budgets = described.get("budgets")
    if not isinstance(budgets, dict):
        budgets = {}
    actions = []
    for method in described.get("methods", []):
        if not isinstance(method, str) or method.startswith("_") or method in _NOT_ACTIONS:
            continue
        entry = signatures.get(method, {})
        arguments = tuple(
            Argument(p["name"], _TYPES.get(str(p.get("dtype")), "any"),
                     p["default"] if p.get("default") is not None else Argument.REQUIRED,
                     p.get("unit") or "")
            for p in entry.get("iparams") or [] if isinstance(p, dict) and "name" in p)
        budget = budgets.get(method)
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
            budget = None
        actions.append(Action(method, arguments, entry.get("description") or "",
                              mutating=method not in _READ_ONLY_METHODS,
                              budget=None if budget is None else float(budget)))
    if "get_config_list" not in described.get("methods", []):
        actions.append(Action("get_config_list", (), "The parameter keys.", mutating=False))
    return Description.build(name, parameters, actions)


class _RemoteMixin(RemoteDeviceMixin):
    """The remote transport of a device's reads, writes and actions."""

    client: PlestyClient

    def read_parameter(self, name: str) -> Deferred[Any]:
        return self.client.query(name)

    def write_parameter(self, name: str, value: Any) -> Deferred[Any]:
        return self.client.write(name, value).addCallback(lambda _: None)

    def run_action(self, action: str, *args: Any) -> Deferred[Any]:
        spec = self._description.actions[action]
        kwargs = {arg.name: value for arg, value in zip(spec.arguments, args)}
        return self.client.call(action, **kwargs)

    def fail_pending(self, error: Exception) -> None:
        """Fail the requests waiting for the server (its client's)."""
        if not self.client.closed:
            self.client.fail_pending(error)


class PlestyRemoteDevice(_RemoteMixin, BaseDevice):
    """A device served by a PLESTY server."""

    def __init__(self, name: str, client: PlestyClient, description: Description) -> None:
        self.client = client
        super().__init__(name, list(description.parameters.values()),
                         list(description.actions.values()), description.doc)


class PlestyRemoteActuator(_RemoteMixin, BaseActuator):
    """An actuator served by a twisted_lab PLESTY server."""

    def __init__(self, name: str, client: PlestyClient, description: Description) -> None:
        self.client = client
        super().__init__(name, description.units, list(description.parameters.values()),
                         list(description.actions.values()), description.doc)


class PlestyRemoteDetector(_RemoteMixin, BaseDetector):
    """A detector served by a twisted_lab PLESTY server."""

    def __init__(self, name: str, client: PlestyClient, description: Description) -> None:
        self.client = client
        super().__init__(name, list(description.parameters.values()),
                         list(description.actions.values()), description.doc,
                         dims=description.dims)


def make_remote_device(name: str, client: PlestyClient, description: Description) -> Any:
    """The remote device class that fits the description's kind."""
    cls = {"actuator": PlestyRemoteActuator, "detector": PlestyRemoteDetector}.get(
        description.kind, PlestyRemoteDevice)
    return cls(name, client, description)


class PlestyImportService(Service):
    """
    Keeps one remote PLESTY device in the registry.

    @ivar device: the remote device, once the server first answered.
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, name: str, address: str, reactor: Any,
                 timeout: float = 5.0, keepalive: float = 2.0, retry: float = 1.0,
                 client_id: str | None = None, resources: Any = None) -> None:
        self.registry = registry
        self.device_name = name
        self.address = address
        self.reactor = reactor
        self.timeout = timeout
        self.keepalive = keepalive
        self.retry = retry
        self.client_id = client_id
        self.resources = resources
        self.client: PlestyClient | None = None
        self.device: Any = None
        self._loop: Deferred[None] | None = None
        self._sleep: Deferred[None] | None = None
        self.setName(f"plesty-import:{name}")

    def startService(self) -> None:
        """Connect, describe, register the device and watch the server."""
        super().startService()
        self.client = PlestyClient(self.reactor, self.address, self.client_id, self.timeout,
                                   self.resources)
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(lambda f: self.log.failure("PLESTY import of {device} failed", f,
                                                         device=self.device_name))

    def stopService(self) -> Deferred[None] | None:
        """Stop watching; the device goes offline, and the socket closes."""
        super().stopService()
        if self._sleep is not None:
            self._sleep.cancel()
        if self.device is not None:
            self.device.set_online(False)
        if self.client is not None:
            client, self.client = self.client, None
            return client.close()
        return None

    async def _pause(self, seconds: float) -> None:
        self._sleep = deferLater(self.reactor, seconds)
        try:
            await self._sleep
        finally:
            self._sleep = None

    async def _run(self) -> None:
        from twisted.internet.defer import CancelledError

        try:
            while self.running:
                if await self._attach():
                    await self._watch()
                if self.running:
                    await self._pause(self.retry)
        except CancelledError:
            pass

    async def _attach(self) -> bool:
        client = self.client
        assert client is not None
        try:
            await client.connect()
            described = await client.describe()
            try:
                config_list = await client.get_config_list()
            except LabError:
                config_list = None
            description = description_from_describe(self.device_name, described, config_list)
        except LabError as e:
            self.log.warn("PLESTY server {address} for {device} is not available: {error}",
                          address=self.address, device=self.device_name, error=str(e))
            return False
        if not self.running:
            return False
        if self.device is None:
            self.device = make_remote_device(self.device_name, client, description)
            self.registry.register(self.device)
        else:
            self.device.client = client  # a new one after this service restarted
            self.device.link_up(description)
        self.log.info("PLESTY device {device} at {address} is online", device=self.device_name,
                      address=self.address)
        return True

    async def _watch(self) -> None:
        client = self.client
        while self.running and client is self.client and client is not None:
            await self._pause(self.keepalive)
            if not self.running or client.last_heard is None:
                break
            if self.reactor.seconds() - client.last_heard < self.keepalive:
                continue
            try:
                await client.ping()
            except DeviceTimeout:
                break
            except LabError:
                pass  # an error reply (a PLESTY server has no ping) is still an answer
        if self.device is not None:
            self.log.warn("PLESTY server {address} for {device} stopped answering",
                          address=self.address, device=self.device_name)
            self.device.link_down(f"device {self.device_name!r} is offline")
