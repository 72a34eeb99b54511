# -*- test-case-name: tests.test_pymodaq_settings_xml -*-
"""
Tests for L{twisted_lab.formats.pymodaq.settings}: parameter XML in
PyMoDAQ's form (spec §6), both ways.
"""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.test_pymodaq_codec import XML
from twisted_lab.description import Parameter
from twisted_lab.errors import ProtocolError
from twisted_lab.formats.pymodaq.settings import (parameter_xml, parse_parameter,
                                                        parse_settings, parse_value,
                                                        setting_xml, settings_xml, value_text)


class SettingsXmlTests(SynchronousTestCase):
    """Our parameters ↔ PyMoDAQ settings XML."""

    def test_spec_one_parameter(self) -> None:
        """A float parameter gives the spec's one-parameter XML exactly."""
        self.assertEqual(parameter_xml(Parameter("exposure", "float"), 0.1), XML[4:])

    def test_spec_minimal_actuator(self) -> None:
        """The minimal actuator Infos of the spec parses to a units setting."""
        xml = ('<settings type="group" title="settings" visible="1" removable="0" '
               'readonly="0"><units type="str" title="Units:" visible="1" removable="0" '
               'readonly="0">mm</units></settings>')
        (units,) = parse_settings(xml)
        self.assertEqual((units.parameter.name, units.value, units.path), ("units", "mm",
                                                                          ("units",)))

    def test_types_round_trip(self) -> None:
        """Each parameter type survives settings XML → parse."""
        parameters = [Parameter("f", "float", minimum=0.0, maximum=2.0),
                      Parameter("i", "int"), Parameter("b", "bool"),
                      Parameter("s", "str", readonly=True),
                      Parameter("c", "str", choices=("fast", "slow")),
                      Parameter("n", "int", choices=(1, 2))]
        values = {"f": 1.5, "i": 3, "b": True, "s": "x y", "c": "slow", "n": 2}
        settings = {s.parameter.name: s for s in parse_settings(settings_xml(parameters, values))}
        self.assertEqual({n: s.value for n, s in settings.items()}, values)
        self.assertEqual(settings["f"].parameter.limits, (0.0, 2.0))
        self.assertTrue(settings["s"].parameter.readonly)
        self.assertEqual(settings["c"].parameter.choices, ("fast", "slow"))
        self.assertEqual(settings["n"].parameter.type, "int")

    def test_nested_groups(self) -> None:
        """Nested groups flatten to dotted names; paths are kept for set_info."""
        xml = ('<settings type="group"><camera type="group"><gain type="int">2</gain>'
               '</camera></settings>')
        (gain,) = parse_settings(xml)
        self.assertEqual((gain.parameter.name, gain.path, gain.value), ("camera.gain",
                                                                       ("camera", "gain"), 2))
        self.assertEqual(setting_xml(gain, 5), b'<gain type="int">5</gain>')
        (again,) = parse_parameter(b'<gain type="int">7</gain>', ("camera", "gain"))
        self.assertEqual(again.parameter.name, "camera.gain")

    def test_list_values_without_eval(self) -> None:
        """List values are PyMoDAQ's wrapped literals, parsed without eval."""
        self.assertEqual(value_text("list", "fast"), "str('fast')")
        self.assertEqual(parse_value("list", "str('fast')"), "fast")
        self.assertEqual(parse_value("list", "float(1.5)"), 1.5)
        self.assertEqual(parse_value("list", "__import__('os')"), "__import__('os')")
        self.assertEqual(parse_value("led", "1"), True)

    def test_bad_xml(self) -> None:
        """Malformed XML or values raise L{ProtocolError}."""
        self.assertRaises(ProtocolError, parse_settings, "<a")
        self.assertRaises(ProtocolError, parse_settings, '<s type="group"><x type="float">abc</x></s>')

    def test_hostile_literals(self) -> None:
        """A peer's list value or limits that is huge or deeply nested is kept as text or
        ignored, never evaluated and never an unhandled error."""
        deep = "[" * 5000 + "]" * 5000
        self.assertEqual(parse_value("list", deep), deep)
        huge = "[" + "1," * 40000 + "]"
        self.assertEqual(parse_value("list", huge), huge)
        xml = f'<s type="group"><x type="float" limits="{deep}">1.5</x></s>'
        (setting,) = parse_settings(xml)
        self.assertEqual((setting.value, setting.parameter.minimum), (1.5, None))
