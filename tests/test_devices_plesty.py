# -*- test-case-name: tests.test_devices_plesty -*-
"""
Tests for L{twisted_lab.devices.plesty_device}: PLESTY device packages
(C{plesty-thorlabs-powermeter} in C{mock:PM400} mode, C{plesty-k10cr1} in
mock mode) hosted by a lab that runs on Python 3.12 (the C{lab312} peer
venv, with this checkout on its path), driven from plesty-lib's own client,
pyleco's Director and PyMoDAQ 4's own TCPServer (our client role).  These
tests fail, never skip, when a venv is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.labproc import free_ports, run_lab_until_connected
from tests.peers import peer_env, peer_python
from tests.test_leco_interop import PylecoMixin
from tests.test_pymodaq_peer_support import start_peer
from twisted_lab.config import parse_config
from twisted_lab.devices import plesty_device
from twisted_lab.errors import ConfigError
from twisted_lab.tap import check_devices

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"




def lab_config(ports: dict[str, int], extra: str = "") -> str:
    """The TOML of the lab under test: two real packages and a misbehaving one."""
    serve = ", ".join(f'{{device = "{name}", address = "tcp://127.0.0.1:{ports[name]}"}}'
                      for name in ("pm", "k10", "bad"))
    return f"""
[lab]
simulated = false

[devices.pm]
type = "plesty"
package = "plesty.thorlabs_powermeter"
address = "mock:PM400"

[devices.k10]
type = "plesty"
package = "plesty.k10cr1"
port = "mock"

[devices.bad]
type = "plesty"
class = "tests.peers.plesty_hanging:Device"
address = "mock:PM100D"
timeout = 0.5

[plesty]
serve = [{serve}]

[leco]
port = {ports["leco"]}
export = ["pm", "k10", "bad"]
data_proxy = false
data_publish = false
{extra}
"""


def lab_env(directory: str) -> dict[str, str]:
    env = peer_env("lab312")
    env["PYTHONPATH"] = str(ROOT)
    env["TWISTED_LAB_TEST_GATE"] = os.path.join(directory, "gate")
    return env


class LabOn312Mixin:
    """Runs the lab in the lab312 venv and the real clients against it."""

    directory: str
    ports: dict[str, int]

    async def start_lab(self, extra: str = "") -> str:
        test: Any = self
        self.directory = os.path.abspath(test.mktemp())
        os.makedirs(self.directory)
        names = ["pm", "k10", "bad", "leco"]
        self.ports = dict(zip(names, free_ports(len(names))))
        config = os.path.join(self.directory, "lab.toml")
        with open(config, "w") as f:
            f.write(lab_config(self.ports, extra))
        log = os.path.join(self.directory, "lab.log")
        await run_lab_until_connected(test, str(peer_python("lab312")), config, log,
                                      self.directory, lab_env(self.directory),
                                      ("pm", "k10", "bad"), 90,
                                      "the lab did not connect its drivers")
        return log

    async def plesty(self, device: str, ops: list[dict[str, Any]], client: str = "client-A",
                     resources: list[str] | None = None) -> list[dict[str, Any]]:
        result = await deferToThread(
            subprocess.run, [str(peer_python("plesty")), str(PEERS / "plesty_ops.py"),
                             f"tcp://127.0.0.1:{self.ports[device]}", client,
                             json.dumps(resources or []), json.dumps(ops)],
            env=peer_env("plesty"), cwd=self.directory, capture_output=True, text=True,
            timeout=90)
        test: Any = self
        test.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class PlestyClientTests(LabOn312Mixin, TestCase):
    """plesty-lib's own client reads and writes the hosted packages."""

    timeout = 180

    async def test_powermeter(self) -> None:
        """Parameters with the head's limits (narrowed at connect), schema operations with
        their arguments, identity; an out-of-range write is refused before the driver."""
        await self.start_lab()
        out = await self.plesty("pm", [
            {"op": "query", "name": "wavelength"},
            {"op": "write", "name": "wavelength", "value": 800.0},
            {"op": "query", "name": "wavelength"},
            {"op": "write", "name": "wavelength", "value": 2000.0},
            {"op": "call", "name": "measure_power", "kwargs": {"averaging": 5}},
            {"op": "call", "name": "identity"},
            {"op": "query", "name": "power_unit"},
            {"op": "write", "name": "power_unit", "value": "furlongs"},
            {"op": "describe"}])
        self.assertEqual(out[0], {"ok": 632.8})
        self.assertEqual(out[1:3], [{"ok": True}, {"ok": 800.0}])
        self.assertIn("InvalidValue: pm.wavelength = 2000.0 nm is above the maximum 1100.0 nm",
                      out[3]["error"])
        power = out[4]["ok"]["power"]
        self.assertTrue(0 < power < 1e-3, power)
        self.assertEqual(out[5], {"ok": "THORLABS,PM400,MOCK0001,1.0.0"})
        self.assertEqual(out[6], {"ok": "W"})
        self.assertIn("InvalidValue", out[7]["error"])
        described = out[8]["ok"]
        self.assertIn("measure_power", described["methods"])
        self.assertIn("configure_and_measure_power", described["methods"])
        wavelength = next(p for p in described["parameters"] if p["name"] == "wavelength")
        self.assertEqual((wavelength["unit"], wavelength["min_value"], wavelength["max_value"]),
                         ("nm", 400.0, 1100.0))

    async def test_rotation_stage(self) -> None:
        """The K10CR1's grouped parameters (MO.*) and its motions, as operations and as
        the actuator's moves."""
        await self.start_lab()
        out = await self.plesty("k10", [
            {"op": "query", "name": "MO.UserPosition"},
            {"op": "call", "name": "move_absolute", "args": [20.0]},
            {"op": "call", "name": "move_abs", "args": [30.0]},
            {"op": "call", "name": "move_rel", "args": [-2.5]},
            {"op": "call", "name": "position"},
            {"op": "write", "name": "MO.MaxVelocity", "value": 7.0},
            {"op": "query", "name": "MO.MaxVelocity"},
            {"op": "write", "name": "MO.MaxVelocity", "value": 12.0},
            {"op": "write", "name": "MO.Position", "value": 1.0}])
        self.assertEqual(out[0], {"ok": 0.0})
        self.assertAlmostEqual(out[1]["ok"], 20.0, places=3)
        self.assertAlmostEqual(out[2]["ok"], 30.0, places=3)
        self.assertAlmostEqual(out[3]["ok"], 27.5, places=3)
        self.assertAlmostEqual(out[4]["ok"], 27.5, places=3)
        self.assertEqual(out[5], {"ok": True})
        self.assertAlmostEqual(out[6]["ok"], 7.0, places=3)
        self.assertIn("above the maximum 10.0 deg/s", out[7]["error"])
        self.assertIn("ReadOnly", out[8]["error"])

    async def test_hang_and_raise_are_contained(self) -> None:
        """A hanging operation fails with DeviceTimeout at its deadline, the device is busy
        until the driver returns, the other devices answer meanwhile; a raising one is a
        DriverError and the device stays usable."""
        await self.start_lab()
        out = await self.plesty("bad", [{"op": "call", "name": "hang"},
                                        {"op": "query", "name": "wavelength"}])
        self.assertIn("DeviceTimeout", out[0]["error"])
        self.assertIn("DeviceBusy", out[1]["error"])
        other = await self.plesty("pm", [{"op": "query", "name": "averaging"}])
        self.assertEqual(other, [{"ok": 1}])
        open(os.path.join(self.directory, "gate"), "w").close()
        await deferLater(reactor, 0.5, lambda: None)
        out = await self.plesty("bad", [{"op": "query", "name": "wavelength"},
                                        {"op": "call", "name": "explode"},
                                        {"op": "call", "name": "identity"}])
        self.assertEqual(out[0], {"ok": 632.8})
        self.assertIn("DriverError", out[1]["error"])
        self.assertIn("the driver broke", out[1]["error"])
        self.assertEqual(out[2], {"ok": "THORLABS,PM100D,MOCK0001,1.0.0"})


class PylecoDirectorTests(LabOn312Mixin, PylecoMixin, TestCase):
    """pyleco's Director drives the hosted packages through our Coordinator."""

    timeout = 180

    async def test_director(self) -> None:
        """get/set_parameters and call_action on both packages; limits hold over LECO."""
        await self.start_lab()
        client = await self.pyleco_client(self.ports["leco"])
        got = await client.command(op="director", actor="lab.pm", call="set_parameters",
                                   args=[{"wavelength": 900.0, "averaging": 10}])
        self.assertEqual(got, {"ok": None})
        got = await client.command(op="director", actor="lab.pm", call="get_parameters",
                                   args=[["wavelength", "averaging"]])
        self.assertEqual(got, {"ok": {"wavelength": 900.0, "averaging": 10}})
        got = await client.command(op="director", actor="lab.pm", call="call_action",
                                   args=["measure_power"])
        self.assertGreater(got["ok"]["power"], 0)
        got = await client.command(op="director", actor="lab.pm", call="set_parameters",
                                   args=[{"wavelength": 100.0}])
        self.assertIn("below the minimum 400.0", json.dumps(got["error"]))
        got = await client.command(op="director", actor="lab.k10", call="call_action",
                                   args=["move_abs", 45.0])
        self.assertAlmostEqual(got["ok"], 45.0, places=3)
        got = await client.command(op="director", actor="lab.k10", call="get_parameters",
                                   args=[["MO.UserPosition"]])
        self.assertAlmostEqual(got["ok"]["MO.UserPosition"], 45.0, places=3)

    async def test_plesty_lease_blocks_leco_move(self) -> None:
        """A PLESTY client holding the K10CR1 makes a LECO move fail with LeaseConflict
        naming the holder; released, the move goes through."""
        await self.start_lab()
        holder = subprocess.Popen(
            [str(peer_python("plesty")), str(PEERS / "plesty_ops.py"),
             f"tcp://127.0.0.1:{self.ports['k10']}", "client-A", json.dumps(["k10"]),
             json.dumps([{"op": "hold"}])],
            env=peer_env("plesty"), cwd=self.directory, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: holder.poll() is None and holder.kill())
        assert holder.stdout is not None and holder.stdin is not None
        line = await deferToThread(holder.stdout.readline)
        self.assertEqual(json.loads(line), {"held": True})
        client = await self.pyleco_client(self.ports["leco"])
        got = await client.command(op="director", actor="lab.k10", call="call_action",
                                   args=["move_abs", 90.0])
        text = json.dumps(got)
        self.assertIn("error", got)
        self.assertIn("LeaseConflict", text)
        self.assertIn("plesty:client-A", text)
        got = await client.command(op="director", actor="lab.k10", call="call_action",
                                   args=["position"])
        self.assertAlmostEqual(got["ok"], 0.0, places=3)  # reads are never refused
        holder.stdin.write("\n")
        holder.stdin.flush()
        await deferToThread(holder.wait, 30)
        got = await client.command(op="director", actor="lab.k10", call="call_action",
                                   args=["move_abs", 90.0])
        self.assertAlmostEqual(got["ok"], 90.0, places=3)


class PyMoDAQClientRoleTests(LabOn312Mixin, TestCase):
    """PyMoDAQ 4's own TCPServer plugins drive the hosted packages (our client role)."""

    timeout = 240

    async def test_move_server(self) -> None:
        """The move server gets the stage's units, moves it and reads its position."""
        peer = start_peer(self, "pymodaq4_server.py", "move")
        port = (await peer.next("port", 90))["port"]
        await self.start_lab(f"""
[pymodaq]
listen = []
export = [{{device = "k10", server = "tcp:host=127.0.0.1:port={port}"}}]
""")
        peer.send(op="wait_client")
        client = await peer.next("client", 60)
        self.assertEqual((client["types"], client["axis_unit"]), (["ACTUATOR"], "deg"))
        peer.send(op="move_abs", value=15.0)
        self.assertAlmostEqual((await peer.next("move_done", 30))["value"], 15.0, places=3)
        peer.send(op="move_rel", value=5.0)
        self.assertAlmostEqual((await peer.next("move_done", 30))["value"], 20.0, places=3)
        peer.send(op="get_actuator_value")
        self.assertAlmostEqual((await peer.next("get_actuator_value", 30))["value"], 20.0,
                               places=3)
        out = await self.plesty("k10", [{"op": "query", "name": "MO.UserPosition"}])
        self.assertAlmostEqual(out[0]["ok"], 20.0, places=3)


    async def test_powermeter_settings(self) -> None:
        """A PyMoDAQ 4 viewer server reads the hosted power meter's settings (its schema
        parameters with the head's values) and writes one with set_info."""
        peer = start_peer(self, "pymodaq4_server.py", "0D")
        port = (await peer.next("port", 90))["port"]
        await self.start_lab(f"""
[pymodaq]
listen = []
export = [{{device = "pm", server = "tcp:host=127.0.0.1:port={port}"}}]
""")
        peer.send(op="wait_client")
        client = await peer.next("client", 60)
        self.assertEqual(client["types"], ["GRABBER"])
        self.assertEqual((client["settings"]["wavelength"], client["settings"]["power_unit"],
                          client["settings"]["averaging"]), (632.8, "W", 1))
        peer.send(op="set_info", path=["wavelength"], value=700.0)
        await peer.next("set_info_sent")
        for _ in range(50):
            out = await self.plesty("pm", [{"op": "query", "name": "wavelength"}])
            if out == [{"ok": 700.0}]:
                break
            await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(out, [{"ok": 700.0}])


class CheckTests(SynchronousTestCase):
    """--check on a plesty device."""

    def config(self) -> Any:
        return parse_config({"lab": {"simulated": False}, "devices": {"pm": {
            "type": "plesty", "package": "plesty.thorlabs_powermeter",
            "address": "mock:PM400"}}}, "lab.toml")

    def test_python_too_old(self) -> None:
        """On a Python older than the packages need, --check says so and names the other way
        (the package's own server imported through our PLESTY client)."""
        self.patch(plesty_device, "MINIMUM_PYTHON", (sys.version_info[0], sys.version_info[1] + 1))
        with self.assertRaises(ConfigError) as e:
            check_devices(self.config())
        message = str(e.exception)
        self.assertIn("lab.toml: devices.pm.type:", message)
        self.assertIn("PLESTY device packages need Python >= 3.12", message)
        self.assertIn("[[plesty.import]]", message)

    def test_list_says_why_not(self) -> None:
        """--list marks the plesty type unusable on a Python that is too old, saying why."""
        import io

        from twisted_lab.tap import Options

        self.patch(plesty_device, "MINIMUM_PYTHON", (sys.version_info[0], sys.version_info[1] + 1))
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit):
            Options().parseOptions(["--list"])
        line = next(x for x in out.getvalue().splitlines() if x.strip().startswith("plesty "))
        self.assertIn("[not usable here: PLESTY device packages need Python >= 3.12", line)
        visa = next(x for x in out.getvalue().splitlines() if x.strip().startswith("visa "))
        self.assertNotIn("not usable", visa)

    def test_unknown_argument_on_312(self) -> None:
        """In the 3.12 lab, --check refuses an argument the driver class does not take and
        a package that does not exist, naming the key."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "lab.toml")
        cases = [('package = "plesty.k10cr1"\nprot = "mock"\n',
                  "devices.k10.prot: plesty.k10cr1.device.Device takes no argument 'prot'"),
                 ('package = "plesty.nope"\n', "devices.k10.package: cannot import"),
                 ('package = "plesty.k10cr1"\nport = "mock"\n', "lab.toml: OK")]
        for table, expected in cases:
            with open(config, "w") as f:
                f.write(f'[lab]\nsimulated = false\n[devices.k10]\ntype = "plesty"\n{table}')
            result = subprocess.run(
                [str(peer_python("lab312")), str(PEERS / "lab_run.py"), "-n", "lab",
                 "--check", "--config", config], cwd=directory, env=lab_env(directory),
                capture_output=True, text=True, timeout=120)
            self.assertIn(expected, result.stdout + result.stderr)
