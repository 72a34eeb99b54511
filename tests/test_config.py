# -*- test-case-name: tests.test_config -*-
"""
Tests for L{twisted_lab.config} and L{twisted_lab.options}.
"""
from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.config import default_config, load_config, parse_config
from twisted_lab.errors import ConfigError
from twisted_lab.options import REQUIRED, Option, validate
from tests.test_discovery import add_third_party

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


class OptionTests(SynchronousTestCase):
    """Schema validation of one table."""

    schema = {
        "port": Option(int, 5555, "A port."),
        "rate": Option(float, 1.0),
        "name": Option(str, REQUIRED),
        "mode": Option(str, "fast", choices=("fast", "safe")),
        "serve": Option(list, [], items={"device": Option(str), "address": Option(str, "x")}),
        "tags": Option(list, [], items={"*": Option(str)}),
    }

    def test_defaults_filled(self) -> None:
        """Missing optional keys get their defaults; an int is accepted for a float."""
        self.assertEqual(validate(self.schema, {"name": "a", "rate": 2}),
                         {"port": 5555, "rate": 2.0, "name": "a", "mode": "fast", "serve": [],
                          "tags": []})

    def test_unknown_key(self) -> None:
        """An unknown key is an error naming file, key, the accepted keys and the
        closest one."""
        e = self.assertRaises(ConfigError, validate, self.schema, {"name": "a", "prot": 1},
                              "lab.toml", "plesty")
        self.assertEqual(str(e), "lab.toml: plesty.prot: unknown key; accepted keys are: "
                                 "mode, name, port, rate, serve, tags; did you mean 'port'?")

    def test_unknown_key_far_from_any(self) -> None:
        """An unknown key close to none of the accepted ones gets no suggestion."""
        e = self.assertRaises(ConfigError, validate, self.schema, {"name": "a", "zzzzzz": 1},
                              "lab.toml", "plesty")
        self.assertNotIn("did you mean", str(e))

    def test_wrong_type(self) -> None:
        """A wrong type names the expected type and the value; bool is not an int."""
        e = self.assertRaises(ConfigError, validate, self.schema, {"name": "a", "port": "5555"},
                              "f.toml")
        self.assertEqual(str(e), "f.toml: port: must be an integer, got str '5555'")
        self.assertRaises(ConfigError, validate, self.schema, {"name": "a", "port": True})

    def test_missing_required(self) -> None:
        """A missing required key is named."""
        e = self.assertRaises(ConfigError, validate, self.schema, {}, "f.toml")
        self.assertEqual(str(e), "f.toml: name: is required but missing")

    def test_choices(self) -> None:
        """A value outside the choices lists them."""
        e = self.assertRaises(ConfigError, validate, self.schema, {"name": "a", "mode": "turbo"})
        self.assertIn("must be one of 'fast', 'safe'", str(e))

    def test_list_of_tables(self) -> None:
        """Each table of a list is validated, with its index in the key."""
        out = validate(self.schema, {"name": "a", "serve": [{"device": "s"}]})
        self.assertEqual(out["serve"], [{"device": "s", "address": "x"}])
        e = self.assertRaises(ConfigError, validate, self.schema,
                              {"name": "a", "serve": [{"device": "s"}, {"devce": "t"}]}, "f")
        self.assertIn("f: serve[1].devce: unknown key", str(e))
        e = self.assertRaises(ConfigError, validate, self.schema, {"name": "a", "serve": [3]})
        self.assertIn("serve[0]: must be a table", str(e))

    def test_list_of_values(self) -> None:
        """Plain list items are type-checked."""
        e = self.assertRaises(ConfigError, validate, self.schema, {"name": "a", "tags": ["x", 1]})
        self.assertIn("tags[1]: must be a string", str(e))

    def test_defaults_not_shared(self) -> None:
        """Mutable defaults are copied, never shared between validations."""
        first = validate(self.schema, {"name": "a"})
        first["serve"].append("x")
        self.assertEqual(validate(self.schema, {"name": "a"})["serve"], [])


class LoadTests(SynchronousTestCase):
    """Reading TOML files."""

    def write(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_missing_file(self) -> None:
        """A missing file is a ConfigError naming it."""
        e = self.assertRaises(ConfigError, load_config, "/nonexistent/lab.toml")
        self.assertEqual(str(e), "/nonexistent/lab.toml: no such file")

    def test_not_toml(self) -> None:
        """A syntax error is reported with the file name and TOML's reason."""
        path = self.write("[devices\n")
        e = self.assertRaises(ConfigError, load_config, path)
        self.assertIn(f"{path}: is not valid TOML", str(e))

    def test_unknown_top_level(self) -> None:
        """An unknown section is refused, naming the known protocols."""
        path = self.write("[modbus]\nport = 502\n")
        e = self.assertRaises(ConfigError, load_config, path)
        self.assertIn(f"{path}: modbus: unknown section", str(e))

    def test_device_without_type(self) -> None:
        """A device table without a type is refused."""
        e = self.assertRaises(ConfigError, parse_config, {"devices": {"x": {"speed": 1}}}, "f")
        self.assertIn("f: devices.x: has no 'type'", str(e))

    def test_device_not_a_table(self) -> None:
        """A device that is not a table is refused."""
        e = self.assertRaises(ConfigError, parse_config, {"devices": {"x": 3}}, "f")
        self.assertIn("f: devices.x: must be a table", str(e))

    def test_lab_table(self) -> None:
        """[lab] is validated like any table."""
        e = self.assertRaises(ConfigError, parse_config, {"lab": {"simulate": True}}, "f")
        self.assertIn("f: lab.simulate: unknown key", str(e))

    def test_full_file(self) -> None:
        """A file with a third-party device and protocol loads in order with defaults."""
        add_third_party(self)
        path = self.write('[lab]\nname = "bench"\n\n[devices.t1]\ntype = "acme.thermometer"\n\n'
                          '[devices.t2]\ntype = "acme.thermometer"\nkelvin = 4.2\n\n[acme]\n')
        config = load_config(path)
        self.assertEqual(config.device_names(), ["t1", "t2"])
        self.assertEqual(config.devices[1].options, {"kelvin": 4.2})
        self.assertEqual([(p.name, p.options) for p in config.protocols], [("acme", {"port": 7000})])
        self.assertEqual(config.lab, {"name": "bench", "simulated": False})


class DefaultConfigTests(SynchronousTestCase):
    """The built-in simulated lab and the shipped example."""

    def test_simulated_lab(self) -> None:
        """No config = the four local simulated devices, all four protocols and the web
        console, and the [la4] section coordinating the simulated LA4 node as device la4."""
        config = default_config()
        self.assertEqual(config.device_names(), ["stage", "powermeter", "spectrometer", "camera"])
        la4 = [p for p in config.protocols if p.name == "la4"][0]
        self.assertEqual([n["name"] for n in la4.options["nodes"]], ["la4"])
        self.assertEqual({p.name for p in config.protocols}, {"pymodaq", "leco", "plesty", "la4",
                                                             "web"})

    def test_example_config_loads(self) -> None:
        """docs/lab.toml, the documented example, is valid."""
        config = load_config(os.path.join(DOCS, "lab.toml"))
        self.assertTrue(config.devices)

    def test_simulated_flag(self) -> None:
        """[lab] simulated = true adds the simulated devices; a clash is refused."""
        config = parse_config({"lab": {"simulated": True}})
        self.assertIn("camera", config.device_names())
        e = self.assertRaises(ConfigError, parse_config,
                              {"lab": {"simulated": True},
                               "devices": {"camera": {"type": "sim.camera"}}}, "f")
        self.assertIn("f: devices.camera: is defined twice", str(e))
