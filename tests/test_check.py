# -*- test-case-name: tests.test_check -*-
"""
C{--check}: each bad config issue 16 names is caught with a message naming
the key; a good config's summary lists every listener's address.
"""
from __future__ import annotations

import os
import tomllib
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.labproc import ROOT, run_twistd
from twisted_lab.check import check, render
from twisted_lab.config import default_config, load_config, parse_config


def checked(text: str) -> tuple[bool, str]:
    config = parse_config(tomllib.loads(text), "lab.toml")
    report = check(config)
    return report.ok, render(config, report)


class BadConfigTests(SynchronousTestCase):
    """Configs that used to pass --check and then failed or misbehaved."""

    def test_zmq_address_without_scheme(self) -> None:
        """A PLESTY address without tcp:// is an error naming the key, with the fix."""
        ok, out = checked('[lab]\nsimulated = true\n[plesty]\n'
                          'serve = [{device = "stage", address = "127.0.0.1:5556"}]\n')
        self.assertFalse(ok)
        self.assertIn('lab.toml: plesty.serve[0].address: not a ZeroMQ address (expected '
                      'tcp://HOST:PORT, ipc://PATH or inproc://NAME); did you mean '
                      '"tcp://127.0.0.1:5556"?', out)

    def test_bare_port_listen(self) -> None:
        """listen = ["19341"] is refused by Twisted's endpoint parser; the message
        shows the endpoint meant."""
        ok, out = checked('[pymodaq]\nlisten = ["19341"]\n')
        self.assertFalse(ok)
        self.assertIn('lab.toml: pymodaq.listen[0]: not an endpoint: a bare port is not '
                      'enough; did you mean "tcp:19341:interface=127.0.0.1"?', out)

    def test_zmq_address_as_endpoint(self) -> None:
        """A ZeroMQ address where a Twisted endpoint belongs is refused with the
        endpoint meant."""
        ok, out = checked('[pymodaq]\nlisten = ["tcp://127.0.0.1:6341"]\n')
        self.assertFalse(ok)
        self.assertIn('did you mean "tcp:6341:interface=127.0.0.1"?', out)

    def test_two_protocols_one_port(self) -> None:
        """The LECO Coordinator and a PLESTY server on one port: an error naming
        both keys."""
        ok, out = checked('[lab]\nsimulated = true\n[leco]\nport = 5555\n[plesty]\n'
                          'serve = [{device = "stage", address = "tcp://127.0.0.1:5555"}]\n')
        self.assertFalse(ok)
        self.assertIn("lab.toml: plesty.serve[0].address: port 5555 is also used by "
                      "leco.port (127.0.0.1:5555)", out)

    def test_wildcard_overlaps(self) -> None:
        """A listener on every interface clashes with one on 127.0.0.1, same port."""
        ok, out = checked('[pymodaq]\nlisten = ["tcp:6341"]\n[la4]\n'
                          'callback = "tcp:6341:interface=127.0.0.1"\n')
        self.assertFalse(ok)
        self.assertIn("la4.callback: port 6341 is also used by pymodaq.listen[0]", out)

    def test_different_interfaces_do_not_clash(self) -> None:
        """One port on two different addresses is fine."""
        ok, out = checked('[pymodaq]\nlisten = ["tcp:6341:interface=127.0.0.1", '
                          '"tcp:6341:interface=127.0.0.2"]\n')
        self.assertTrue(ok, out)

    def test_la4_node_and_callback_same_port(self) -> None:
        """Naming both LA4 ports 5000 is caught before binding."""
        ok, out = checked('[la4]\ncallback = "tcp:5000:interface=127.0.0.1"\n'
                          'node = {enabled = true, port = 5000}\n')
        self.assertFalse(ok)
        self.assertIn("la4.callback: port 5000 is also used by la4.node.port", out)

    def test_phantom_export(self) -> None:
        """Exporting a name nothing provides is a warning naming the key and the
        device meant; the config is still OK."""
        ok, out = checked('[lab]\nsimulated = true\n[leco]\nexport = ["stage", "stgae"]\n'
                          '[plesty]\nserve = [{device = "stgae", '
                          'address = "tcp://127.0.0.1:5556"}]\n')
        self.assertTrue(ok, out)
        self.assertIn("lab.toml: OK (2 warnings)", out)
        self.assertIn("lab.toml: warning: leco.export[1]: no device or import provides "
                      "'stgae'; did you mean 'stage'?", out)
        self.assertIn("lab.toml: warning: plesty.serve[0].device: no device or import "
                      "provides 'stgae'; did you mean 'stage'?", out)

    def test_import_provides_a_name(self) -> None:
        """A device imported by one protocol may be exported by another."""
        ok, out = checked('[plesty]\nimport = [{name = "oven", address = '
                          '"tcp://127.0.0.1:5600"}]\n[leco]\nexport = ["oven"]\n')
        self.assertTrue(ok, out)
        self.assertNotIn("warning", out)
        self.assertIn("tcp://127.0.0.1:5600", out)

    def test_bad_import_address(self) -> None:
        """A PLESTY import address is a ZeroMQ address to connect to: * is refused."""
        ok, out = checked('[plesty]\nimport = [{name = "oven", address = "tcp://*:5600"}]\n')
        self.assertFalse(ok)
        self.assertIn("plesty.import[0].address: cannot connect to *", out)

    def test_bad_export_server(self) -> None:
        """A PyMoDAQ export's server is checked by Twisted's client parser."""
        ok, out = checked('[lab]\nsimulated = true\n[pymodaq]\n'
                          'export = [{device = "camera", server = "10.0.0.1:6341"}]\n')
        self.assertFalse(ok)
        self.assertIn("pymodaq.export[0].server: not a client endpoint", out)

    def test_federate_with_scheme(self) -> None:
        """[leco] federate takes host:port; a tcp:// prefix is refused with the fix."""
        ok, out = checked('[leco]\nfederate = ["tcp://192.0.2.7:12300"]\n')
        self.assertFalse(ok)
        self.assertIn("leco.federate[0]: must be host:port, without a scheme; did you mean "
                      "'192.0.2.7:12300'?", out)


class SummaryTests(SynchronousTestCase):
    """What --check prints for a good config."""

    def test_every_listener_and_peer(self) -> None:
        """The example config's summary lists every listener's address and every
        peer the lab connects to."""
        config = load_config(os.path.join(ROOT, "docs", "lab.toml"))
        report = check(config)
        out = render(config, report)
        self.assertTrue(report.ok, out)
        self.assertGreater(len(report.listeners), 0)
        for key, _, address in report.listeners:
            self.assertRegex(out, rf"\n  {key.replace('[', '.').replace(']', '.')} +"
                                  rf"{address.text.replace('*', '.')}  ")
        for _key, _, address in report.peers:
            self.assertIn(address, out)

    def test_builtin_lab_has_five_devices(self) -> None:
        """The built-in lab's summary lists the 5 devices the running lab has (the
        LA4 board included) and its 10 listeners."""
        config = default_config()
        report = check(config)
        self.assertEqual([name for name, _ in report.devices],
                         ["stage", "powermeter", "spectrometer", "camera", "la4"])
        self.assertEqual([str(a) for _, _, a in report.listeners], [
            "127.0.0.1:6341", "127.0.0.1:12300", "127.0.0.1:11100", "127.0.0.1:11099",
            "127.0.0.1:5555", "127.0.0.1:5556", "127.0.0.1:5557", "127.0.0.1:5000",
            "127.0.0.1:5001", "127.0.0.1:8765"])
        self.assertEqual(report.errors + report.warnings, [])

    def test_check_exit_status(self) -> None:
        """twistd lab --check exits 1 on an error, printing the key; 0 on warnings."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[pymodaq]\nlisten = ["19341"]\n')
        out = run_twistd(["-n", "lab", "--check", "--config", path], ROOT)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn(f"{path}: pymodaq.listen[0]: not an endpoint", out.stdout)
        with open(path, "w") as f:
            f.write('[lab]\nsimulated = true\n[leco]\nexport = ["stgae"]\n')
        out = run_twistd(["-n", "lab", "--check", "--config", path], ROOT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("warning: leco.export[0]", out.stdout)

    def test_unknown_type_did_you_mean(self) -> None:
        """An unknown device type names the type meant."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[devices.s]\ntype = "sim.stag"\n')
        out = run_twistd(["-n", "lab", "--check", "--config", path], ROOT)
        self.assertEqual(out.returncode, 1)
        self.assertIn("did you mean 'sim.stage'?", out.stderr)


class PluginSectionTests(SynchronousTestCase):
    """Another plugin's section describes itself to --check."""

    def test_check_section_hook(self) -> None:
        """A plugin's check_section adds its listener to the summary and to the
        port-clash search; a plugin without one is skipped."""
        from twisted_lab import check as check_module
        from twisted_lab.addresses import parse_server_endpoint
        from twisted_lab.config import Config, ProtocolSection

        class Acme:
            def check_section(self, report: Any, section: dict[str, Any]) -> None:
                report.listen("acme.listen", "ACME server",
                              lambda: parse_server_endpoint(section["listen"]))

        plugins = {"acme": Acme(), "silent": object()}
        self.patch(check_module, "protocol_plugin", lambda name, file=None: plugins[name])
        leco = parse_config({"leco": {"port": 7000}}, "lab.toml").protocols[0]
        config = Config([], [leco, ProtocolSection("acme", {"listen": "tcp:7000"}),
                             ProtocolSection("silent", {})], {}, "lab.toml")
        report = check(config)
        self.assertIn(("acme.listen", "ACME server", parse_server_endpoint("tcp:7000")),
                      report.listeners)
        self.assertEqual(report.errors, [("acme.listen", "port 7000 is also used by leco.port "
                                                         "(127.0.0.1:7000); give one of them "
                                                         "another port")])
