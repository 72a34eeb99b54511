# -*- test-case-name: tests.test_web_api -*-
"""
The C{[web]} HTTP API over real loopback: every endpoint, and every error
with its status code and a JSON error body.
"""
from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.logger import Logger
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel
from hypothesis import given, settings
from hypothesis import strategies as st
from zope.interface import implementer

from twisted_lab.devices.simulated import SimulatedCamera, SimulatedPowerMeter, SimulatedStage
from twisted_lab.interfaces import IWireReport
from twisted_lab.leases import Owner
from twisted_lab.options import validate
from twisted_lab.protocols.web.api import ApiResource
from twisted_lab.protocols.web.context import WebContext
from twisted_lab.protocols.web.plugin import plugin
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDevice

JSON = {"content-type": "application/json"}


@implementer(IWireReport)
class _Reporter(MultiService):
    """A protocol service that reports one listener and one peer."""

    def wire_report(self) -> dict[str, Any]:
        return {"listeners": ["tcp://127.0.0.1:9"],
                "peers": [{"peer": "client-1", "state": "connected", "counters": {"requests": 3}}]}


class WebApiMixin:
    """A registry of simulated devices served by a started [web] service on 127.0.0.1:0."""

    section: dict[str, Any] = {}

    def start_web(self, **options: Any) -> None:
        """Start the lab (a parent service with a fake protocol and the web section)."""
        self.registry = DeviceRegistry(reactor)
        self.registry.register(SimulatedStage("stage", reactor, speed=1000.0))
        self.registry.register(SimulatedPowerMeter("powermeter", reactor))
        self.registry.register(SimulatedCamera("camera", reactor, width=64, height=48,
                                               exposure=0.0))
        self.registry.register(FakeDevice("plain", {"x": 1.5, "label": "a"}, readonly=["label"]))
        section = validate(plugin.options, dict({"listen": "tcp:0:interface=127.0.0.1"},
                                                **options))
        self.top = MultiService()
        self.top.setName("lab")
        other = _Reporter()
        other.setName("fake")
        other.setServiceParent(self.top)
        self.web = plugin.make_service(self.registry, section, reactor)
        self.web.setServiceParent(self.top)
        self.top.startService()
        self.addCleanup(self.top.stopService)  # type: ignore[attr-defined]
        self.port = self.web.listener.port.getHost().port
        self.agent = Agent(reactor)

    async def http(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                   headers: dict[str, str] | None = None, session: str | None = "abc123"
                   ) -> tuple[int, Any, Any]:
        """One request; returns (status, decoded JSON or bytes, response)."""
        h = Headers()
        if session:
            h.addRawHeader("X-Lab-Session", session)
        if body is not None:
            raw = json.dumps(body).encode()
            h.addRawHeader("content-type", "application/json")
        for k, v in (headers or {}).items():
            h.setRawHeaders(k, [v])
        producer = FileBodyProducer(io.BytesIO(raw)) if raw is not None else None
        url = f"http://127.0.0.1:{self.port}/api/{path}".encode()
        response = await self.agent.request(method.encode(), url, h, producer)
        data = await readBody(response)
        ctype = (response.headers.getRawHeaders("content-type") or [""])[0]
        decoded: Any = json.loads(data) if ctype == "application/json" else data
        return response.code, decoded, response


class EndpointTests(WebApiMixin, TestCase):
    """Every endpoint answers as documented."""

    def setUp(self) -> None:
        self.start_web()

    async def test_list_devices(self) -> None:
        """GET /api/devices lists every device with kind, origin, online and lease holders."""
        self.registry.acquire(Owner("plesty", "c1"), ["stage/position"])
        status, body, _ = await self.http("GET", "devices")
        self.assertEqual(status, 200)
        rows = {d["name"]: d for d in body["devices"]}
        self.assertEqual(list(rows), ["stage", "powermeter", "camera", "plain"])
        self.assertEqual(rows["stage"]["kind"], "actuator")
        self.assertEqual(rows["camera"]["dims"], ["Data2D"])
        self.assertEqual(rows["stage"]["origin"], {"local": True})
        self.assertEqual(rows["stage"]["leased_by"], ["plesty:c1"])
        self.assertTrue(rows["plain"]["online"])

    async def test_describe(self) -> None:
        """GET /api/devices/NAME gives parameters with type, units, limits and the actions."""
        status, body, _ = await self.http("GET", "devices/powermeter")
        self.assertEqual(status, 200)
        wavelength = [p for p in body["parameters"] if p["name"] == "WAVELENGTH"][0]
        self.assertEqual((wavelength["type"], wavelength["units"], wavelength["minimum"]),
                         ("float", "nm", 190.0))
        self.assertIn("identity", [a["name"] for a in body["actions"]])

    async def test_get_parameter_and_all(self) -> None:
        """GET a parameter gives its value; GET parameters gives every value."""
        status, body, _ = await self.http("GET", "devices/plain/parameters/x")
        self.assertEqual((status, body["value"]), (200, 1.5))
        status, body, _ = await self.http("GET", "devices/plain/parameters")
        self.assertEqual((status, body["values"]), (200, {"x": 1.5, "label": "a"}))

    async def test_set_parameter(self) -> None:
        """PUT a parameter writes it through the registry and answers the value set."""
        status, body, _ = await self.http("PUT", "devices/powermeter/parameters/WAVELENGTH",
                                          {"value": 800})
        self.assertEqual((status, body["value"]), (200, 800.0))
        device = self.registry.lookup("powermeter")
        self.assertEqual(self.successResultOf(device.get("WAVELENGTH")), 800.0)

    async def test_call_action(self) -> None:
        """POST an action runs it with args/kwargs and answers its result."""
        status, body, _ = await self.http("POST", "devices/stage/actions/move_abs",
                                          {"args": [2.0]})
        self.assertEqual((status, body["result"]), (200, 2.0))
        status, body, _ = await self.http("POST", "devices/powermeter/actions/identity", {})
        self.assertEqual(status, 200)
        self.assertTrue(body["result"].startswith("twisted_lab,SimulatedPowerMeter,powermeter,"))

    async def test_data_json_and_npy(self) -> None:
        """GET data grabs once as JSON; GET data.npy gives the array in .npy form."""
        status, body, _ = await self.http("GET", "devices/powermeter/data")
        self.assertEqual(status, 200)
        self.assertEqual(body["signals"][0]["dim"], "Data0D")
        status, raw, response = await self.http("GET", "devices/camera/data.npy")
        self.assertEqual(status, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["application/octet-stream"])
        array = np.load(io.BytesIO(raw), allow_pickle=False)
        self.assertEqual(array.shape, (48, 64))

    async def test_leases(self) -> None:
        """POST leases takes one for the session, GET lists it, DELETE releases it."""
        status, body, _ = await self.http("POST", "leases", {"resources": ["stage"], "ttl": 30})
        self.assertEqual(status, 201)
        key = body["id"]
        self.assertEqual(body["owner"], "web:abc123")
        status, body, _ = await self.http("GET", "leases")
        self.assertEqual([(lease["id"], lease["owner"], lease["resources"]) for lease in body["leases"]],
                         [(key, "web:abc123", ["stage"])])
        status, body, _ = await self.http("DELETE", f"leases/{key}")
        self.assertEqual(status, 200)
        self.assertEqual(self.registry.leases.leases(), [])

    async def test_web_lease_holds_against_others(self) -> None:
        """A lease taken through the API refuses another session's write (409)."""
        await self.http("POST", "leases", {"resources": ["plain"]})
        status, body, _ = await self.http("PUT", "devices/plain/parameters/x", {"value": 2.0},
                                          session="other1")
        self.assertEqual((status, body["error"], body["holder"]), (409, "LeaseConflict",
                                                                   "web:abc123"))
        status, _, _ = await self.http("PUT", "devices/plain/parameters/x", {"value": 2.0})
        self.assertEqual(status, 200)

    async def test_session_cookie(self) -> None:
        """X-Lab-Session names the session; without it the API sets a lab_session cookie;
        the owner is web:<session>."""
        _, mine, _ = await self.http("GET", "session", session="my_Script-1")
        self.assertEqual(mine["owner"], "web:my_Script-1")
        _, other, _ = await self.http("GET", "session", session="bad session!")
        self.assertNotEqual(other["session"], "bad session!")
        status, body, response = await self.http("GET", "session", session=None)
        self.assertEqual(status, 200)
        cookie = response.headers.getRawHeaders("set-cookie")[0]
        self.assertIn(f"lab_session={body['session']}", cookie)
        self.assertEqual(body["owner"], f"web:{body['session']}")
        self.assertFalse(body["read_only"])

    async def test_wires(self) -> None:
        """GET wires gives every reporting service's listeners and peers, and the leases."""
        self.registry.acquire(Owner("leco", "lab.director"), ["camera"])
        status, body, _ = await self.http("GET", "wires")
        self.assertEqual(status, 200)
        by = {p["protocol"]: p for p in body["protocols"]}
        self.assertEqual(by["fake"]["peers"][0]["counters"], {"requests": 3})
        self.assertEqual(by["web"]["listeners"], [f"http://127.0.0.1:{self.port}/"])
        self.assertEqual([lease["owner"] for lease in body["leases"]], ["leco:lab.director"])

    async def test_log(self) -> None:
        """GET log gives recent events, filtered by level and component."""
        Logger(namespace="tests.webcomponent").warn("a warning {n}", n=7)
        Logger(namespace="tests.other").info("an info")
        status, body, _ = await self.http("GET", "log?level=warn&component=webcomponent")
        self.assertEqual(status, 200)
        self.assertEqual([(e["level"], e["text"]) for e in body["events"]],
                         [("warn", "a warning 7")])
        status, body, _ = await self.http("GET", "log?level=info&component=tests.")
        self.assertEqual([e["text"] for e in body["events"]], ["a warning 7", "an info"])

    async def test_static_console(self) -> None:
        """GET / serves the console page and its script from the package."""
        for path, ctype in (("", "text/html; charset=utf-8"), ("app.js", "text/javascript")):
            response = await self.agent.request(
                b"GET", f"http://127.0.0.1:{self.port}/{path}".encode())
            body = await readBody(response)
            self.assertEqual(response.code, 200)
            self.assertEqual(response.headers.getRawHeaders("content-type"), [ctype])
            self.assertTrue(body)


class ErrorTests(WebApiMixin, TestCase):
    """Every error has its status code and a JSON body naming it."""

    def setUp(self) -> None:
        self.start_web()

    async def check(self, status: int, error: str, method: str, path: str, **kw: Any) -> Any:
        got, body, _ = await self.http(method, path, **kw)
        self.assertEqual((got, body["error"]), (status, error), body)
        self.assertTrue(body["message"])
        return body

    async def test_unknown_device(self) -> None:
        """An unknown device is 404 UnknownDevice naming the known ones."""
        body = await self.check(404, "UnknownDevice", "GET", "devices/nope")
        self.assertIn("stage", body["message"])
        await self.check(404, "UnknownDevice", "PUT", "devices/nope/parameters/x",
                         body={"value": 1})

    async def test_unknown_parameter_and_action(self) -> None:
        """Unknown parameters and actions are 404."""
        await self.check(404, "UnknownParameter", "GET", "devices/plain/parameters/nope")
        await self.check(404, "UnknownAction", "POST", "devices/plain/actions/nope", body={})

    async def test_unknown_route_and_method(self) -> None:
        """An unknown route is 404, a known route with a wrong method 405."""
        await self.check(404, "NotFound", "GET", "nothing/here")
        await self.check(405, "MethodNotAllowed", "DELETE", "devices")
        await self.check(404, "NotADetector", "GET", "devices/stage/data.npy")

    async def test_bad_value(self) -> None:
        """A value out of limits or of the wrong type is 422 InvalidValue."""
        body = await self.check(422, "InvalidValue", "PUT",
                                "devices/powermeter/parameters/WAVELENGTH", body={"value": 1})
        self.assertIn("minimum", body["message"])
        await self.check(422, "InvalidValue", "PUT", "devices/powermeter/parameters/WAVELENGTH",
                         body={"value": "blue"})

    async def test_read_only_parameter(self) -> None:
        """Writing a read-only parameter is 403 ReadOnly."""
        await self.check(403, "ReadOnly", "PUT", "devices/plain/parameters/label",
                         body={"value": "b"})

    async def test_lease_conflict(self) -> None:
        """A write to a device leased over another protocol is 409 naming the holder."""
        self.registry.acquire(Owner("plesty", "client-7"), ["stage"])
        body = await self.check(409, "LeaseConflict", "POST", "devices/stage/actions/move_abs",
                                body={"args": [1.0]})
        self.assertEqual(body["holder"], "plesty:client-7")
        self.assertIn("plesty:client-7", body["message"])
        await self.check(409, "LeaseConflict", "POST", "leases", body={"resources": ["stage"]})

    async def test_bad_json(self) -> None:
        """A body that is not JSON (or not an object) is 400."""
        await self.check(400, "BadJSON", "PUT", "devices/plain/parameters/x", raw=b"{1:",
                         headers=JSON)
        await self.check(400, "BadRequest", "PUT", "devices/plain/parameters/x", raw=b"[1]",
                         headers=JSON)
        await self.check(400, "BadRequest", "PUT", "devices/plain/parameters/x", body={"v": 1})
        await self.check(400, "BadRequest", "POST", "leases", body={"resources": "stage"})
        await self.check(400, "BadRequest", "GET", "log?level=loud")

    async def test_not_json_content_type(self) -> None:
        """A write whose body is not declared application/json is 415."""
        await self.check(415, "UnsupportedMediaType", "PUT", "devices/plain/parameters/x",
                         raw=b'{"value": 2}', headers={"content-type": "text/plain"})
        self.assertEqual(self.successResultOf(self.registry.lookup("plain").get("x")), 1.5)

    async def test_oversized_body(self) -> None:
        """A body over max_body is 413, and nothing is written."""
        big = json.dumps({"value": "x" * (2 * 1024 * 1024)}).encode()
        body = await self.check(413, "BodyTooLarge", "PUT", "devices/plain/parameters/label",
                                raw=big, headers=JSON)
        self.assertEqual(body["limit"], 1024 * 1024)
        self.assertEqual(self.successResultOf(self.registry.lookup("plain").get("label")), "a")

    async def test_release_other_sessions_lease(self) -> None:
        """Releasing a lease another session took is 403; an unknown lease 404."""
        _, body, _ = await self.http("POST", "leases", {"resources": ["plain"]})
        await self.check(403, "NotYourLease", "DELETE", f"leases/{body['id']}", session="other2")
        await self.check(404, "UnknownLease", "DELETE", "leases/nope")


class ReadOnlyTests(WebApiMixin, TestCase):
    """[web] read_only = true refuses every write with 403 and still serves reads."""

    def setUp(self) -> None:
        self.start_web(read_only=True)

    async def test_writes_refused(self) -> None:
        """set, mutating actions and leases are 403 ReadOnlyConsole; reads pass."""
        for method, path, body in (("PUT", "devices/plain/parameters/x", {"value": 2}),
                                   ("POST", "devices/stage/actions/move_abs", {"args": [1]}),
                                   ("POST", "leases", {"resources": ["stage"]})):
            status, got, _ = await self.http(method, path, body)
            self.assertEqual((status, got["error"]), (403, "ReadOnlyConsole"))
        status, got, _ = await self.http("POST", "devices/stage/actions/position", {})
        self.assertEqual(status, 200)
        status, got, _ = await self.http("GET", "devices/plain/parameters/x")
        self.assertEqual((status, got["value"]), (200, 1.5))
        status, got, _ = await self.http("GET", "session")
        self.assertTrue(got["read_only"])


class TokenTests(WebApiMixin, TestCase):
    """[web] token_file: writes need the bearer token; reads do not."""

    def setUp(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("s3cret-token-123\n")
        self.start_web(token_file=os.path.abspath(path))

    async def test_token_needed_for_writes(self) -> None:
        """No token or a wrong one is 401; the right one writes; reads need none."""
        for headers in ({}, {"authorization": "Bearer wrong-token"}):
            status, body, _ = await self.http("PUT", "devices/plain/parameters/x", {"value": 2},
                                              headers=headers)
            self.assertEqual((status, body["error"]), (401, "TokenRequired"))
        status, body, _ = await self.http("PUT", "devices/plain/parameters/x", {"value": 2},
                                          headers={"authorization": "Bearer s3cret-token-123"})
        self.assertEqual((status, body["value"]), (200, 2.0))
        status, body, _ = await self.http("GET", "devices/plain/parameters/x")
        self.assertEqual(status, 200)


class BodyFuzzTests(SynchronousTestCase):
    """Whatever body a write carries, the answer is a JSON error or success, never a crash."""

    def setUp(self) -> None:
        self.registry = DeviceRegistry(Clock())
        self.registry.register(FakeDevice("plain", {"x": 1.5, "label": "a"}))
        self.api = ApiResource(WebContext(self.registry, Clock(), max_body=4096))

    def answer(self, method: bytes, postpath: list[bytes], body: bytes) -> tuple[int, Any]:
        channel = DummyChannel()
        request = Request(channel)
        request.method, request.uri = method, b"/api/" + b"/".join(postpath)
        request.clientproto = b"HTTP/1.0"  # no chunked encoding to undo
        request.prepath, request.postpath, request.args = [b"api"], postpath, {}
        request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
        request.content = io.BytesIO(body)
        self.api.render(request)
        head, _, payload = channel.transport.written.getvalue().partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        return status, json.loads(payload)

    @settings(max_examples=150, deadline=None)
    @given(st.one_of(st.binary(max_size=300),
                     st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                                  | st.text(max_size=20),
                                  lambda inner: st.lists(inner, max_size=4)
                                  | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                                  max_leaves=12).map(lambda v: json.dumps(v).encode())),
           st.sampled_from([(b"PUT", [b"devices", b"plain", b"parameters", b"x"]),
                            (b"POST", [b"devices", b"plain", b"actions", b"nope"]),
                            (b"POST", [b"leases"])]))
    def test_any_body(self, body: bytes, route: tuple[bytes, list[bytes]]) -> None:
        """Any body gets a status with a JSON body; errors carry an error code and message."""
        status, payload = self.answer(route[0], list(route[1]), body)
        self.assertIn(status, (200, 201, 400, 404, 409, 413, 422))
        if status >= 400:
            self.assertTrue(payload["error"] and payload["message"])

    def test_body_limit(self) -> None:
        """A body under max_body is answered; one over it is 413 and nothing is written."""
        status, payload = self.answer(b"PUT", [b"devices", b"plain", b"parameters", b"label"],
                                      json.dumps({"value": "y" * 4000}).encode())
        self.assertEqual(status, 200)
        status, payload = self.answer(b"PUT", [b"devices", b"plain", b"parameters", b"label"],
                                      json.dumps({"value": "y" * 4100}).encode())
        self.assertEqual((status, payload["error"]), (413, "BodyTooLarge"))
        self.assertEqual(self.successResultOf(self.registry.lookup("plain").get("label")),
                         "y" * 4000)
