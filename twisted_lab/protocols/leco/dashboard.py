# -*- test-case-name: tests.test_leco_dashboard -*-
"""
The lab as a PyMoDAQ 5.3 dashboard on LECO.

PyMoDAQ 5.3.8 (C{pymodaq/utils/leco/rpc_method_definitions.py}) lets a
director ask a dashboard, named C{dashboard}, for its devices, its saved
states and its experiments, and apply a state or an experiment.  Each method
answers null at once; the answer comes as a call back to the directors that
called C{set_remote_name} (as PyMoDAQ's C{ActorListener} does):

  - C{get_devices} → C{send_devices(data=null)} with one serializall frame of
    C{{"actuators": [...], "detectors": [...]}} (PyMoDAQ's
    C{binary_serialization_to_kwargs} of a dict), the LECO names of the
    exported actors;
  - C{get_states} → C{send_states(states=[names])};
  - C{apply_state(state)} → C{applied_state_done(done=bool)};
  - C{get_experiments} → C{send_experiments(experiments=[])};
  - C{apply_experiment(experiment)} → C{applied_experiment_done(done=false)}.

A B{state} is a named snapshot of device settings (writable parameters):
C{save_state(state, devices=None)} (our extension) records the current
values, C{apply_state} writes them back through the lease guard.  States live
in a JSON file (L{StateStore}), written atomically.  PyMoDAQ's B{experiments}
(scripted extension runs) have nothing to map onto in the lab: they are
always an empty list, and applying one answers C{done=false} with a logged
note.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lab.errors import ConfigError, InvalidValue, LabError
from twisted_lab.interfaces import IActuator, IDetector
from twisted_lab.leases import Owner
from twisted_lab.protocols.leco import serializall
from twisted_lab.protocols.leco.component import Component
from twisted_lab.registry import DeviceRegistry

__all__ = ["DashboardComponent", "StateStore", "DASHBOARD_METHODS", "EXPERIMENTS_NOTE",
           "MAX_STATES_FILE"]

#: The PyMoDAQ 5.3 dashboard methods, and ours.
DASHBOARD_METHODS = ("set_remote_name", "get_devices", "get_states", "apply_state",
                     "get_experiments", "apply_experiment", "save_state", "delete_state")

#: Why the experiment list is empty.
EXPERIMENTS_NOTE = ("twisted_lab has no PyMoDAQ experiments (scripted extension runs); "
                    "use states for named device settings")

#: Largest states file read, in bytes.
MAX_STATES_FILE = 16 * 2**20


class StateStore:
    """
    Named snapshots of device settings, in a JSON file
    C{{"states": {name: {device: {parameter: value}}}}}.

    Every change rewrites the file atomically: a temporary file in the same
    folder, flushed and C{fsync}ed, then renamed over the old one (and the
    folder synced), so a crash leaves the old file or the new one, never a
    torn one.  The file is small and written on the caller's thread.

    @ivar path: the file, or C{None} to keep states in memory only.
    @ivar states: the states, by name.
    """

    log = Logger()

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        self.states: dict[str, dict[str, dict[str, Any]]] = {}
        if self.path is not None and self.path.exists():
            self.states = self._read(self.path)

    @staticmethod
    def _read(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
        if path.stat().st_size > MAX_STATES_FILE:
            raise ConfigError(f"states file {path} is larger than {MAX_STATES_FILE} bytes")
        try:
            data = json.loads(path.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"states file {path} is not valid JSON: {e}") from None
        states = data.get("states") if isinstance(data, dict) else None
        if not isinstance(states, dict) or not all(
                isinstance(s, dict) and all(isinstance(p, dict) for p in s.values())
                for s in states.values()):
            raise ConfigError(f"states file {path} must hold "
                              '{"states": {name: {device: {parameter: value}}}}')
        return states

    def names(self) -> list[str]:
        """The state names, sorted."""
        return sorted(self.states)

    def save(self, name: str, snapshot: dict[str, dict[str, Any]]) -> None:
        """Record (or replace) a state and write the file."""
        self.states[name] = snapshot
        self._write()

    def delete(self, name: str) -> bool:
        """Forget a state; C{False} if there was none."""
        if self.states.pop(name, None) is None:
            return False
        self._write()
        return True

    def _write(self) -> None:
        if self.path is None:
            return
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"states": self.states}, indent=1, sort_keys=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                         dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


class DashboardComponent(Component):
    """
    A LECO Component (named C{dashboard} by default) answering PyMoDAQ 5.3's
    dashboard methods for the registry.

    @ivar actors: the LECO names of the exported devices, by device name
        (C{get_devices} lists these; all registry devices when empty).
    @ivar store: the L{StateStore}.
    @ivar remote_names: the directors called back.
    """

    log = Logger()

    def __init__(self, registry: DeviceRegistry, coordinator: str, reactor: Any,
                 store: StateStore, actors: dict[str, str] | None = None,
                 name: str = "dashboard", **kwargs: Any) -> None:
        super().__init__(name, coordinator, reactor, **kwargs)
        self.registry = registry
        self.store = store
        self.actors = dict(actors or {})
        self.remote_names: set[str] = set()
        for method in DASHBOARD_METHODS:
            self.register_method(method, getattr(self, "_rpc_" + method))

    # -- helpers -------------------------------------------------------------

    def _caller_name(self) -> str:
        caller = getattr(self, "caller", None)
        if isinstance(caller, bytes):
            caller = caller.decode("utf-8", "replace")
        return str(caller or "")

    def _callback(self, method: str, params: dict[str, Any],
                  frames: Sequence[bytes] = ()) -> None:
        for name in sorted(self.remote_names):
            d = maybeDeferred(self.ask, name, method, params, list(frames))
            d.addErrback(self._callback_failed, name, method)

    def _callback_failed(self, failure: Failure, name: str, method: str) -> None:
        if getattr(failure.value, "rpc_code", None) in (-32093, -32092):
            self.remote_names.discard(name)
            self.log.info("dashboard director {name} is gone", name=name)
        else:
            self.log.warn("dashboard {method} callback to {name} failed: {error}",
                          method=method, name=name, error=str(failure.value))

    @staticmethod
    def _arg(params: Any, name: str) -> Any:
        if isinstance(params, dict):
            return params.get(name)
        if isinstance(params, list) and params:
            return params[0]
        return None

    def devices(self) -> dict[str, list[str]]:
        """C{{"actuators": [...], "detectors": [...]}}: LECO names of the exported devices."""
        out: dict[str, list[str]] = {"actuators": [], "detectors": []}
        names = self.actors or {n: n for n in self.registry.names()}
        for device_name, leco_name in names.items():
            if device_name not in self.registry.names():
                continue
            device = self.registry.lookup(device_name)
            if IActuator.providedBy(device):
                out["actuators"].append(leco_name)
            elif IDetector.providedBy(device):
                out["detectors"].append(leco_name)
        return out

    async def snapshot(self, devices: Sequence[str] | None = None
                       ) -> dict[str, dict[str, Any]]:
        """The writable parameters of C{devices} (default: the exported ones, or all)."""
        names = list(devices) if devices else list(self.actors or self.registry.names())
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            device = await self.registry.get(name)
            description = await device.describe()
            values: dict[str, Any] = {}
            for parameter in description.parameters.values():
                if parameter.readonly:
                    continue
                value = await device.get(parameter.name)
                if isinstance(value, (str, int, float, bool)) or value is None:
                    values[parameter.name] = value
            out[name] = values
        return out

    async def apply(self, name: str, owner: Owner) -> bool:
        """Write a saved state back; C{False} (logged) if it is unknown or a write fails."""
        state = self.store.states.get(name)
        if state is None:
            self.log.warn("apply_state: no state {state!r}", state=name)
            return False
        ok = True
        for device_name, values in state.items():
            for parameter, value in values.items():
                try:
                    guarded = await self.registry.guarded(device_name, owner)
                    await guarded.set(parameter, value)
                except LabError as e:
                    ok = False
                    self.log.warn("apply_state {state!r}: {device}.{parameter} = {value!r} "
                                  "failed: {error}", state=name, device=device_name,
                                  parameter=parameter, value=value, error=str(e))
        self.log.info("applied state {state!r} ({ok})", state=name, ok=ok)
        return ok

    # -- methods -------------------------------------------------------------

    def _rpc_set_remote_name(self, params: Any, frames: list[bytes]) -> None:
        name = self._arg(params, "name") or self._caller_name()
        if not isinstance(name, str) or not name:
            raise InvalidValue(f"set_remote_name: name must be a string, got {name!r}")
        self.remote_names.add(name)

    def _rpc_get_devices(self, params: Any, frames: list[bytes]) -> None:
        self._callback("send_devices", {"data": None}, [serializall.encode(self.devices())])

    def _rpc_get_states(self, params: Any, frames: list[bytes]) -> None:
        self._callback("send_states", {"states": self.store.names()})

    def _rpc_apply_state(self, params: Any, frames: list[bytes]) -> None:
        name = self._arg(params, "state")
        if not isinstance(name, str):
            raise InvalidValue(f"apply_state: state must be a string, got {name!r}")
        owner = Owner("leco", self._caller_name() or "dashboard")

        async def run() -> None:
            done = await self.apply(name, owner)
            self._callback("applied_state_done", {"done": done})

        Deferred.fromCoroutine(run()).addErrback(
            lambda f: self.log.failure("apply_state {state!r} failed", f, state=name))

    def _rpc_get_experiments(self, params: Any, frames: list[bytes]) -> None:
        self._callback("send_experiments", {"experiments": []})

    def _rpc_apply_experiment(self, params: Any, frames: list[bytes]) -> None:
        self.log.info("apply_experiment {experiment!r}: {note}",
                      experiment=self._arg(params, "experiment"), note=EXPERIMENTS_NOTE)
        self._callback("applied_experiment_done", {"done": False})

    def _rpc_save_state(self, params: Any, frames: list[bytes]) -> Deferred[list[str]]:
        name = self._arg(params, "state")
        devices = params.get("devices") if isinstance(params, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidValue(f"save_state: state must be a non-empty string, got {name!r}")
        if devices is not None and not (isinstance(devices, list)
                                        and all(isinstance(d, str) for d in devices)):
            raise InvalidValue("save_state: devices must be a list of device names")

        async def run() -> list[str]:
            self.store.save(name, await self.snapshot(devices))
            return self.store.names()

        return Deferred.fromCoroutine(run())

    def _rpc_delete_state(self, params: Any, frames: list[bytes]) -> bool:
        name = self._arg(params, "state")
        if not isinstance(name, str):
            raise InvalidValue(f"delete_state: state must be a string, got {name!r}")
        return self.store.delete(name)
