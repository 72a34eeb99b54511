# -*- test-case-name: tests.test_errors -*-
"""
Tests for L{twisted_lab.errors}: one hierarchy, stable codes, actionable messages.
"""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_lab import errors
from twisted_lab.errors import (ConfigError, LabError, LeaseConflict, ReadOnly, UnknownAction,
                                UnknownDevice, UnknownParameter)


class ErrorTests(SynchronousTestCase):
    """The error vocabulary protocols map to their wire forms."""

    def test_hierarchy_and_codes(self) -> None:
        """Every public error is a LabError whose code is its own class name, all distinct."""
        classes = [getattr(errors, name) for name in errors.__all__]
        for cls in classes:
            self.assertTrue(issubclass(cls, LabError), cls)
            self.assertEqual(cls.code, cls.__name__)
        self.assertEqual(len({c.code for c in classes}), len(classes))

    def test_unknown_names_list_the_known(self) -> None:
        """Unknown device/parameter/action errors name what was asked and what exists."""
        self.assertEqual(str(UnknownDevice("cam", ["stage", "camera"])),
                         "unknown device 'cam'; known devices: camera, stage")
        self.assertEqual(str(UnknownParameter("stage", "sped", ["speed"])),
                         "device 'stage' has no parameter 'sped'; it has: speed")
        self.assertEqual(str(UnknownAction("stage", "_secret", [])),
                         "device 'stage' has no action '_secret'; it has: none")

    def test_details(self) -> None:
        """Errors carry machine-readable details for the wire."""
        conflict = LeaseConflict("stage/position", "plesty:c1")
        self.assertEqual((conflict.resource, conflict.holder), ("stage/position", "plesty:c1"))
        self.assertEqual(conflict.details, {"resource": "stage/position", "holder": "plesty:c1"})
        self.assertEqual(str(ReadOnly("meter", "POWER")),
                         "parameter 'POWER' of device 'meter' is read-only")

    def test_config_error_names_file_and_key(self) -> None:
        """ConfigError reads file: key: reason."""
        self.assertEqual(str(ConfigError("unknown key", "lab.toml", "devices.x.sped")),
                         "lab.toml: devices.x.sped: unknown key")
        self.assertEqual(str(ConfigError("no such file", "lab.toml")), "lab.toml: no such file")
