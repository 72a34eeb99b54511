# -*- test-case-name: tests.test_logs -*-
"""
L{twisted_lab.logs}: levels and per-component levels that really filter,
text or JSON lines.
"""
from __future__ import annotations

import io
import json

from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase

from twisted_lab.logs import ALWAYS, make_observer, parse_levels


def emit(observer: object, namespace: str, level: LogLevel, **fields: object) -> None:
    Logger(namespace=namespace, observer=observer).emit(level, "m {x}", x=1,  # type: ignore
                                                         **fields)


class LevelTests(SynchronousTestCase):
    """parse_levels and the filter."""

    def test_parse(self) -> None:
        """A default level, then component=level pairs; components map to namespaces."""
        default, levels = parse_levels("warn, leco=debug,my.plugin=error")
        self.assertEqual(default, LogLevel.warn)
        self.assertEqual(levels, {"twisted_lab.protocols.leco": LogLevel.debug,
                                  "my.plugin": LogLevel.error})
        self.assertEqual(parse_levels("")[0], LogLevel.info)
        self.assertRaises(ValueError, parse_levels, "loud")
        self.assertRaises(ValueError, parse_levels, "=debug")

    def test_filters(self) -> None:
        """Below the default: dropped; a component's own level wins; ALWAYS passes."""
        out = io.StringIO()
        default, levels = parse_levels("warn,leco=debug")
        observer = make_observer(out, "text", default, levels)
        emit(observer, "twisted_lab.registry.DeviceRegistry", LogLevel.info)
        emit(observer, "twisted_lab.protocols.leco.export.DeviceActor", LogLevel.debug)
        emit(observer, "twisted_lab.protocols.plesty.export", LogLevel.error)
        emit(observer, "twisted_lab.tap", LogLevel.info, **{ALWAYS: True})
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 3, lines)
        self.assertIn("[twisted_lab.protocols.leco.export.DeviceActor#debug]", lines[0])
        self.assertIn("[twisted_lab.protocols.plesty.export#error]", lines[1])
        self.assertIn("[twisted_lab.tap#info]", lines[2])

    def test_json_lines(self) -> None:
        """JSON format: one object per line, no record separator."""
        out = io.StringIO()
        observer = make_observer(out, "json", LogLevel.info, {})
        emit(observer, "a", LogLevel.info)
        emit(observer, "b", LogLevel.warn)
        lines = out.getvalue().splitlines()
        self.assertEqual([json.loads(line)["log_namespace"] for line in lines], ["a", "b"])
        self.assertNotIn("\x1e", out.getvalue())
