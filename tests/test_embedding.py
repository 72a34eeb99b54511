# -*- test-case-name: tests.test_embedding -*-
"""
The embedding example (docs/examples/web_dashboard.py) works: a twisted.web
site in the same service tree as the lab reads devices from the lab's
registry over real HTTP.
"""
from __future__ import annotations

import importlib.util
import json
import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.test_discovery import add_third_party
from twisted_lab.config import parse_config

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                       "examples", "web_dashboard.py")


def load_example() -> object:
    spec = importlib.util.spec_from_file_location("web_dashboard", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class EmbeddingTests(TestCase):
    """The example site serves the lab registry's devices."""

    async def test_site_reads_registry(self) -> None:
        """GET /devices lists the lab's devices and /devices/t1 reads a parameter value."""
        add_third_party(self)
        config = parse_config({"devices": {"t1": {"type": "acme.thermometer", "kelvin": 77}}})
        example = load_example()
        top = example.make_service(config, reactor, web="tcp:0:interface=127.0.0.1")  # type: ignore[attr-defined]
        top.startService()
        self.addCleanup(top.stopService)
        port = top.getServiceNamed("web")._waitingForPort.result.getHost().port
        agent = Agent(reactor)
        response = await agent.request(b"GET", b"http://127.0.0.1:%d/devices" % port)
        self.assertEqual(json.loads(await readBody(response)), {"devices": ["t1"]})
        response = await agent.request(b"GET", b"http://127.0.0.1:%d/devices/t1" % port)
        body = json.loads(await readBody(response))
        self.assertEqual(body["values"], {"temperature": 77.0})
        self.assertTrue(body["online"])
        response = await agent.request(b"GET", b"http://127.0.0.1:%d/devices/nope" % port)
        self.assertEqual(response.code, 404)
        self.assertIn("unknown device 'nope'", json.loads(await readBody(response))["error"])
