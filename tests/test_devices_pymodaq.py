# -*- test-case-name: tests.test_devices_pymodaq -*-
"""
Tests for L{twisted_lab.devices.pymodaq_device}: PyMoDAQ 5 instrument
plugins (C{DAQ_Move_Mock} and C{DAQ_2DViewer_Mock} from
pymodaq_plugins_mock 5.3.0) hosted headless by a lab running in the
C{labpymodaq} venv (this checkout on its path), driven by PyMoDAQ 5's own
LECO directors (C{director_utils.ActuatorDirector}/C{DetectorDirector} over a
C{PymodaqListener}, in the pymodaq5 venv) and by plesty-lib's client.  These
tests fail, never skip, when a venv is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.peers import peer_env, peer_python
from tests.labproc import free_ports, run_lab_until_connected
from twisted_lab.config import parse_config
from twisted_lab.errors import ConfigError
from twisted_lab.tap import check_devices

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"
MOVE = "pymodaq_plugins_mock.daq_move_plugins.daq_move_Mock:DAQ_Move_Mock"
VIEW2D = ("pymodaq_plugins_mock.daq_viewer_plugins.plugins_2D.daq_2Dviewer_Mock:"
          "DAQ_2DViewer_Mock")


def lab_config(ports: dict[str, int]) -> str:
    serve = ", ".join(f'{{device = "{name}", address = "tcp://127.0.0.1:{ports[name]}"}}'
                      for name in ("mover", "camera", "bad"))
    return f"""
[lab]
simulated = false

[devices.mover]
type = "pymodaq.plugin"
plugin = "{MOVE}"
settings = {{tau = 50, epsilon = 0.001}}

[devices.camera]
type = "pymodaq.plugin"
plugin = "{VIEW2D}"
settings = {{Nx = 40, Ny = 30, Nimagespannel = 1}}

[devices.bad]
type = "pymodaq.plugin"
plugin = "tests.peers.pymodaq_hanging:DAQ_Move_Hanging"
settings = {{tau = 10, epsilon = 0.001}}
timeout = 0.5

[plesty]
serve = [{serve}]

[leco]
port = {ports["leco"]}
export = ["mover", "camera", "bad"]
data_proxy = false
data_publish = false
"""


class PymodaqLabMixin:
    """Runs the lab in the labpymodaq venv."""

    directory: str
    ports: dict[str, int]

    async def start_lab(self, text: str | None = None, tag: str = "lab",
                        devices: tuple[str, ...] = ("mover", "camera", "bad")) -> None:
        """Start a lab (the one of L{lab_config} unless C{text} is given)."""
        test: Any = self
        if text is None:
            self.directory = os.path.abspath(test.mktemp())
            os.makedirs(self.directory)
            names = ["mover", "camera", "bad", "leco", "director", "viewer"]
            self.ports = dict(zip(names, free_ports(len(names))))
            text = lab_config(self.ports)
        config = os.path.join(self.directory, f"{tag}.toml")
        with open(config, "w") as f:
            f.write(text)
        log = os.path.join(self.directory, f"{tag}.log")
        env = peer_env("labpymodaq")
        env["PYTHONPATH"] = str(ROOT)
        env["TWISTED_LAB_TEST_GATE"] = os.path.join(self.directory, "gate")
        await run_lab_until_connected(test, str(peer_python("labpymodaq")), config, log,
                                      self.directory, env, devices, 120,
                                      "the lab did not initialise its plugins")

    async def plesty(self, device: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = await deferToThread(
            subprocess.run, [str(peer_python("plesty")), str(PEERS / "plesty_ops.py"),
                             f"tcp://127.0.0.1:{self.ports[device]}", "client-A", "[]",
                             json.dumps(ops)],
            env=peer_env("plesty"), cwd=self.directory, capture_output=True, text=True,
            timeout=90)
        test: Any = self
        test.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class HostedPluginTests(PymodaqLabMixin, TestCase):
    """The hosted plugins, driven over LECO by PyMoDAQ 5 and over PLESTY by plesty-lib."""

    timeout = 300

    async def test_pymodaq5_directors(self) -> None:
        """PyMoDAQ 5's ActuatorDirector moves the hosted DAQ_Move_Mock (set_move_done with a
        real DataActuator in its units) and its DetectorDirector grabs the hosted
        DAQ_2DViewer_Mock (a real DataToExport of Data2D DataFromPlugins with both axes)."""
        await self.start_lab()
        result = await deferToThread(
            subprocess.run, [str(peer_python("pymodaq5")), str(PEERS / "pymodaq5_hosted.py"),
                             str(self.ports["leco"]), "mover", "camera"],
            env=peer_env("pymodaq5"), cwd=self.directory, capture_output=True, text=True,
            timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(out["move_done"]["class"], "DataActuator")
        self.assertLess(abs(out["move_done"]["value"] - 1.5), 0.01)
        self.assertEqual(out["move_done"]["units"], "µm")
        self.assertLess(abs(out["move_rel_done"] - 1.0), 0.01)
        self.assertLess(abs(out["position"] - 1.0), 0.01)
        self.assertIn("tau", out["actuator_settings"])
        self.assertTrue(out["is_dte"])
        (signal_,) = out["data"]["signals"]
        self.assertEqual((signal_["class"], signal_["dim"], signal_["shape"]),
                         ("DataFromPlugins", "Data2D", [30, 40]))
        self.assertEqual(signal_["axes"], ["the y axis", "the x axis"])
        self.assertTrue(signal_["finite"])

    async def test_plesty_client(self) -> None:
        """plesty-lib's client moves, reads and writes the settings of, and grabs from, the
        hosted plugins; the settings' limits and choices hold."""
        await self.start_lab()
        out = await self.plesty("mover", [
            {"op": "call", "name": "move_abs", "args": [2.0]},
            {"op": "call", "name": "position"},
            {"op": "query", "name": "tau"},
            {"op": "write", "name": "tau", "value": 20},
            {"op": "query", "name": "tau"},
            {"op": "write", "name": "controller.axis", "value": "Nowhere"},
            {"op": "query", "name": "units"},
            {"op": "query", "name": "status"}])
        self.assertLess(abs(out[0]["ok"] - 2.0), 0.01)
        self.assertLess(abs(out[1]["ok"] - 2.0), 0.01)
        self.assertEqual(out[2:5], [{"ok": 50}, {"ok": True}, {"ok": 20}])
        self.assertIn("InvalidValue", out[5]["error"])
        self.assertEqual(out[6], {"ok": "µm"})
        self.assertIsInstance(out[7]["ok"], str)
        out = await self.plesty("camera", [{"op": "call", "name": "grab"},
                                           {"op": "write", "name": "Nimagescolor",
                                            "value": 9}])
        self.assertNotIn("error", out[0], out[0])
        self.assertIn("above the maximum 3", out[1]["error"])

    async def test_hang_and_raise_are_contained(self) -> None:
        """A plugin call that blocks fails with DeviceTimeout and leaves its device busy
        (it has a Qt thread of its own: the other plugins go on); one that raises is a
        DriverError and the device stays usable."""
        await self.start_lab()
        out = await self.plesty("bad", [{"op": "call", "name": "move_abs", "args": [500.0]},
                                        {"op": "call", "name": "position"}])
        self.assertIn("DeviceTimeout", out[0]["error"])
        self.assertIn("DeviceBusy", out[1]["error"])
        other = await self.plesty("mover", [{"op": "call", "name": "move_abs", "args": [0.5]}])
        self.assertLess(abs(other[0]["ok"] - 0.5), 0.01)
        open(os.path.join(self.directory, "gate"), "w").close()
        for _ in range(100):
            out = await self.plesty("bad", [{"op": "call", "name": "position"}])
            if "ok" in out[0]:
                break
            await deferLater(reactor, 0.2, lambda: None)
        self.assertIn("ok", out[0])
        out = await self.plesty("bad", [{"op": "call", "name": "move_abs", "args": [-500.0]},
                                        {"op": "call", "name": "move_abs", "args": [3.0]}])
        self.assertIn("DriverError", out[0]["error"])
        self.assertIn("the driver broke", out[0]["error"])
        self.assertLess(abs(out[1]["ok"] - 3.0), 0.01)


class DirectorPluginTests(PymodaqLabMixin, TestCase):
    """PyMoDAQ 5's own LECO director plugins drive the hosted plugins of another lab."""

    timeout = 300

    async def test_director_plugins(self) -> None:
        """A second lab hosts PyMoDAQ's DAQ_Move_LECODirector and DAQ_2DViewer_LECODirector
        (headless, like any plugin) pointed at the first lab's actors; a move and a grab
        through them, asked over PLESTY, reach the hosted DAQ_Move_Mock and
        DAQ_2DViewer_Mock over LECO."""
        await self.start_lab()
        leco = self.ports["leco"]
        await self.start_lab(f"""
[lab]
simulated = false

[devices.director]
type = "pymodaq.plugin"
plugin = "pymodaq_plugins_mock.daq_move_plugins.daq_move_LECODirector:DAQ_Move_LECODirector"
settings = {{host = "127.0.0.1", port = {leco}, actor_name = "mover"}}

[devices.viewer]
type = "pymodaq.plugin"
plugin = "{VIEW2D.replace("daq_2Dviewer_Mock:DAQ_2DViewer_Mock",
                          "daq_2Dviewer_LECODirector:DAQ_2DViewer_LECODirector")}"
settings = {{host = "127.0.0.1", port = {leco}, actor_name = "camera"}}

[plesty]
serve = [{{device = "director", address = "tcp://127.0.0.1:{self.ports["director"]}"}},
         {{device = "viewer", address = "tcp://127.0.0.1:{self.ports["viewer"]}"}}]
""", "directors", ("director", "viewer"))
        out = await self.plesty("director", [{"op": "call", "name": "move_abs", "args": [2.5]}])
        self.assertLess(abs(out[0]["ok"] - 2.5), 0.01)
        out = await self.plesty("mover", [{"op": "call", "name": "position"}])
        self.assertLess(abs(out[0]["ok"] - 2.5), 0.01)
        out = await self.plesty("viewer", [{"op": "call", "name": "grab"}])
        self.assertNotIn("error", out[0], out[0])
        self.assertIn("Mock2D_0", json.dumps(out[0]))


class CheckTests(SynchronousTestCase):
    """--check of pymodaq.plugin devices, in the labpymodaq venv."""

    def test_check(self) -> None:
        """A missing class and an unknown setting are reported with their keys; a good
        config passes."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "lab.toml")
        env = peer_env("labpymodaq")
        env["PYTHONPATH"] = str(ROOT)
        cases = [(f'plugin = "{MOVE}"\nsettings = {{tua = 5}}\n',
                  "devices.m.settings.tua: DAQ_Move_Mock has no setting 'tua'"),
                 ('plugin = "pymodaq_plugins_mock.daq_move_plugins.daq_move_Mock:Nope"\n',
                  "devices.m.plugin:"),
                 ('plugin = "json:JSONDecoder"\n', "is not a PyMoDAQ instrument plugin"),
                 (f'plugin = "{MOVE}"\nsettings = {{tau = 5, "bounds.is_bounds" = true}}\n',
                  "lab.toml: OK")]
        for table, expected in cases:
            with open(config, "w") as f:
                f.write(f'[lab]\nsimulated = false\n[devices.m]\ntype = "pymodaq.plugin"\n'
                        f'{table}')
            result = subprocess.run(
                [str(peer_python("labpymodaq")), str(PEERS / "lab_run.py"), "-n", "lab",
                 "--check", "--config", config], cwd=directory, env=env,
                capture_output=True, text=True, timeout=120)
            self.assertIn(expected, result.stdout + result.stderr)

    def test_not_installed(self) -> None:
        """Where PyMoDAQ is not installed, --check says which extra to install."""
        from twisted_lab.devices import plugins

        self.patch(plugins, "_missing", lambda *modules, extra="": (
            f"the Python package {modules[0]!r} is not installed (pip install {extra})"))
        config = parse_config({"lab": {"simulated": False}, "devices": {"m": {
            "type": "pymodaq.plugin", "plugin": MOVE}}}, "lab.toml")
        with self.assertRaises(ConfigError) as e:
            check_devices(config)
        self.assertIn("devices.m.type: device type 'pymodaq.plugin' cannot run here", str(
            e.exception))
        self.assertIn("twisted_lab[pymodaq]", str(e.exception))
