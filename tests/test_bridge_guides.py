# -*- test-case-name: tests.test_bridge_guides -*-
"""
The bridge guides in docs/guides/: every config file loads and validates, and
every guide page names its config and the commands to run it.
"""
from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.config import load_config

GUIDES = Path(__file__).resolve().parent.parent / "docs" / "guides"

#: guide → (devices it defines, protocol sections it uses)
EXPECTED = {
    "pymodaq4-into-leco": ([], ["pymodaq", "leco"]),
    "plesty-into-pymodaq": (["demo_readout", "demo_wavelength"], ["plesty", "pymodaq"]),
    "la4-from-pymodaq": (["rig_light"], ["la4", "pymodaq"]),
}


class GuideConfigTests(SynchronousTestCase):
    """Each guide's TOML is a valid lab config with the bridge it describes."""

    def test_every_config_loads(self) -> None:
        """load_config accepts each guide's config, with the expected devices and sections."""
        for name, (devices, protocols) in EXPECTED.items():
            config = load_config(GUIDES / f"{name}.toml")
            self.assertEqual(config.device_names(), devices, name)
            self.assertEqual([p.name for p in config.protocols], protocols, name)

    def test_no_unlisted_configs(self) -> None:
        """Every config in docs/guides/ is checked here (none is left out)."""
        self.assertEqual(sorted(p.stem for p in GUIDES.glob("*.toml")), sorted(EXPECTED))

    def test_pages_name_config_and_commands(self) -> None:
        """Each guide page links its config and gives the twistd command using it."""
        for name in EXPECTED:
            page = (GUIDES / f"{name}.md").read_text()
            self.assertIn(f"({name}.toml)", page)
            self.assertIn(f"twistd -n lab --config docs/guides/{name}.toml", page)

    def test_la4_light_is_a_pymodaq_actuator(self) -> None:
        """The LA4 guide exports the node's model_light through adapter.actuator as ACTUATOR."""
        config = load_config(GUIDES / "la4-from-pymodaq.toml")
        light = config.devices[0]
        self.assertEqual((light.type, light.options["device"], light.options["parameter"]),
                         ("adapter.actuator", "rig", "model_light"))
        pymodaq = next(p for p in config.protocols if p.name == "pymodaq")
        self.assertEqual([(e["device"], e["role"]) for e in pymodaq.options["export"]],
                         [("rig_light", "ACTUATOR")])
