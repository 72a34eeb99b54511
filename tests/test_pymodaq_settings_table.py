# -*- test-case-name: tests.test_pymodaq_settings_table -*-
"""
One table of value types run against both protocols that send PyMoDAQ's
settings tree: the PyMoDAQ 4 TCP client role (C{Infos}) and the LECO
PyMoDAQ 5 actor (C{get_settings} → C{set_director_settings}).  Both trees
come from L{twisted_lab.formats.pymodaq.settings.settings_tree}, so every
row's element must be the same in both, written as PyMoDAQ's own
C{ioxml.parameter_to_xml_string} writes it, and read back to its value, by
our readers and by PyMoDAQ 4.4's and 5.3's own (L{RealPyMoDAQTests}).
"""
from __future__ import annotations

import json
import pathlib
import xml.etree.ElementTree as ET
from typing import Any, NamedTuple

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from tests.peers import run_peer_script
from tests.test_leco_pymodaq_actor import FakeComponent
from twisted_lab.description import Parameter
from twisted_lab.devices.base import BaseDetector
from twisted_lab.formats.pymodaq.settings import leaf_values, parse_settings
from twisted_lab.protocols.leco.pymodaq_actor import register_pymodaq_methods
from twisted_lab.protocols.pymodaq.export import PyMoDAQClientFactory
from twisted_lab.protocols.pymodaq.message import TO_SERVER, MessageParser
from twisted_lab.registry import DeviceRegistry


#: Loads settings trees with PyMoDAQ's own code, in a peer venv.
SCRIPT = pathlib.Path(__file__).parent / "peers" / "pymodaq_settings_read.py"


class Row(NamedTuple):
    """One value type: the parameter, and the element PyMoDAQ writes for it."""

    parameter: Parameter
    kind: str
    text: str
    readonly: str
    limits: str | None
    read_back: Any


TABLE = [
    Row(Parameter("cooled", "bool", default=True), "bool", "1", "0", None, True),
    Row(Parameter("idle", "bool", default=False), "bool", "0", "0", None, False),
    Row(Parameter("gain", "int", default=3), "int", "3", "0", None, 3),
    Row(Parameter("exposure", "float", default=0.25), "float", "0.25", "0", None, 0.25),
    Row(Parameter("mode", "str", default="auto"), "str", "auto", "0", None, "auto"),
    Row(Parameter("shutter", "str", choices=("open", "closed"), default="open"),
        "list", "str('open')", "0", "['open', 'closed']", "open"),
    Row(Parameter("binning", "int", choices=(1, 2, 4), default=2),
        "list", "int(2)", "0", "[1, 2, 4]", 2),
    Row(Parameter("power", "float", minimum=0.0, maximum=10.0, default=2.5),
        "float", "2.5", "0", "[0.0, 10.0]", 2.5),
    # an open bound is not sent: PyMoDAQ's numeric parameters compare with both
    Row(Parameter("offset", "float", minimum=-1.0, default=1.0), "float", "1.0", "0", None, 1.0),
    Row(Parameter("serial", "str", readonly=True, default="X1"), "str", "X1", "1", None, "X1"),
]


class TableDevice(BaseDetector):
    """A detector with one parameter per row of L{TABLE}."""

    dims = ("Data0D",)

    def __init__(self) -> None:
        super().__init__("table", [row.parameter for row in TABLE])


class BothProtocolsTests(SynchronousTestCase):
    """Every row, through the PyMoDAQ 4 TCP client role and the LECO PyMoDAQ 5 actor."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(Clock())
        self.registry.register(TableDevice())

    def pymodaq4_tree(self) -> str:
        """The C{Infos} settings tree the PyMoDAQ 4 TCP client role sends."""
        proto = PyMoDAQClientFactory(self.registry, "table", "GRABBER").buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 6341))
        proto.makeConnection(transport)
        messages = MessageParser(TO_SERVER).feed(transport.value())
        [infos] = [m for m in messages if m.command == "Infos"]
        xml: str = infos.args[0]
        return xml

    def leco_tree(self) -> str:
        """The settings tree the LECO PyMoDAQ 5 actor sends with C{set_director_settings}."""
        component = FakeComponent("lab.table")
        register_pymodaq_methods(component, self.registry, "table")
        component.request("set_remote_name", {"name": "N1.director"})
        self.assertIsNone(component.request("get_settings")["result"])
        [(_, params, _)] = component.callbacks("set_director_settings")
        xml: str = params["settings"]
        return xml

    def trees(self) -> dict[str, ET.Element]:
        return {"PyMoDAQ 4 TCP": ET.fromstring(self.pymodaq4_tree()),
                "LECO PyMoDAQ 5": ET.fromstring(self.leco_tree())}

    def test_elements_as_pymodaq_writes_them(self) -> None:
        """
        Each row's element has PyMoDAQ's type, text, C{readonly} (always
        written) and C{limits} (only when set), and PyMoDAQ's attribute set.
        """
        for protocol, root in self.trees().items():
            for row in TABLE:
                name = row.parameter.name
                node = root.find(name)
                self.assertIsNotNone(node, f"{protocol}: {name}")
                assert node is not None
                expected = {"type": row.kind, "title": name, "visible": "1", "removable": "0",
                            "readonly": row.readonly}
                if row.limits is not None:
                    expected["limits"] = row.limits
                self.assertEqual((dict(node.attrib), node.text), (expected, row.text),
                                 f"{protocol}: {name}")

    def test_same_element_in_both(self) -> None:
        """Both protocols send the same bytes for every row."""
        trees = self.trees()
        for row in TABLE:
            name = row.parameter.name
            elements = {protocol: ET.tostring(root.find(name))  # type: ignore[arg-type]
                        for protocol, root in trees.items()}
            self.assertEqual(len(set(elements.values())), 1, f"{name}: {elements}")

    def test_read_back(self) -> None:
        """
        Each row reads back to its value, through the PyMoDAQ 4 importer
        (C{parse_settings}) and the LECO director (C{leaf_values}).
        """
        for protocol, xml in (("PyMoDAQ 4 TCP", self.pymodaq4_tree()),
                              ("LECO PyMoDAQ 5", self.leco_tree())):
            imported = {s.parameter.name: s for s in parse_settings(xml)}
            values = leaf_values(xml)
            for row in TABLE:
                name = row.parameter.name
                self.assertEqual((imported[name].value, values[name]),
                                 (row.read_back, row.read_back), f"{protocol}: {name}")
                self.assertEqual(imported[name].parameter.readonly, row.parameter.readonly)
                if row.limits is not None and row.kind != "list":
                    self.assertEqual((imported[name].parameter.minimum,
                                      imported[name].parameter.maximum),
                                     (row.parameter.minimum, row.parameter.maximum))
                if row.kind == "list":
                    self.assertEqual(imported[name].parameter.choices, row.parameter.choices)


class RealPyMoDAQTests(SynchronousTestCase):
    """
    PyMoDAQ's own code (4.4.11 and 5.3.8, in the peer venvs) loads both
    protocols' trees to every row's value, type, read-only flag and limits.
    """

    def read_with(self, peer: str) -> None:
        both = BothProtocolsTests("test_same_element_in_both")
        both.setUp()
        trees = [both.pymodaq4_tree(), both.leco_tree()]
        done = run_peer_script(peer, SCRIPT.read_text(), *trees, timeout=240)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        leaves = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        for tree in range(2):
            got = {leaf["name"]: leaf for leaf in leaves[tree * len(TABLE):(tree + 1) * len(TABLE)]}
            for row in TABLE:
                name = row.parameter.name
                limits = row.limits if row.kind == "list" or row.limits is None else \
                    repr([row.parameter.minimum, row.parameter.maximum])
                self.assertEqual(got[name], {"name": name, "type": row.kind,
                                             "value": repr(row.read_back),
                                             "readonly": row.parameter.readonly,
                                             "limits": limits}, f"{peer} tree {tree}")

    def test_pymodaq4(self) -> None:
        """PyMoDAQ 4.4.11 reads both trees as the table says."""
        self.read_with("pymodaq4")

    def test_pymodaq5(self) -> None:
        """PyMoDAQ 5.3.8 (pymodaq_gui) reads both trees as the table says."""
        self.read_with("pymodaq5")
