# -*- test-case-name: tests.test_leco_bigdata_interop -*-
"""
Camera frames to a real pyleco 0.6.0.post1 Communicator (its venv), over
loopback: as JSON (C{call_action}) and as additional binary payload frames
(C{call_action_binary}), with the same values.  These tests fail (never
skip) when the peer is missing.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from twisted.trial.unittest import TestCase

from tests.test_leco_interop import PylecoMixin
from twisted_lab.bigjson import BIG
from twisted_lab.data import Axis, Export, Signal
from twisted_lab.protocols.leco.rpc import INTERNAL_ERROR
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDetector, FakeDevice


def _camera() -> tuple[DeviceRegistry, np.ndarray[Any, Any]]:
    image = (np.random.default_rng(3).random((150, 140)) * 65535).astype(np.uint16)
    assert image.size >= BIG  # encoded on the worker pool
    axes = [Axis("y", "px", np.arange(150, dtype=float), 0),
            Axis("x", "px", np.arange(140, dtype=float) * 0.5, 1)]
    registry = DeviceRegistry()
    registry.register(FakeDetector("camera", Export("camera", [
        Signal("camera", [image], labels=["image"], units="counts", axes=axes,
               kind="DataFromPlugins")])))
    registry.register(FakeDevice("broken", {}, actions={
        "grab": lambda: {"image": np.zeros(BIG), "bad": object()}}))
    return registry, image


class CameraFramesTests(PylecoMixin, TestCase):
    """A pyleco client gets camera frames from our actor, both ways."""

    timeout = 60

    async def test_json_equals_binary(self) -> None:
        """C{call_action("grab")} (JSON) and C{call_action_binary} (binary frames)
        give a pyleco client the same image and axes, equal to the device's."""
        coordinator = self.start_coordinator()
        registry, image = _camera()
        await self.actor(registry, "camera", coordinator.endpoint)
        client = await self.pyleco_client(coordinator.port)
        as_json = await client.command(op="ask", receiver="N1.camera", method="call_action",
                                       params={"action": "grab"})
        as_binary = await client.command(op="ask", receiver="N1.camera",
                                         method="call_action_binary",
                                         params={"action": "grab"}, binary=[])
        json_image = as_json["ok"]["signals"][0]["data"][0]
        result, frames = as_binary["ok"]
        ref = result["signals"][0]["data"][0]
        self.assertEqual(ref["dtype"], "<u2")
        self.assertEqual(ref["shape"], [150, 140])
        binary_image = np.frombuffer(bytes.fromhex(frames[ref["__array__"]]),
                                     dtype=ref["dtype"]).reshape(ref["shape"])
        self.assertEqual(json_image, image.tolist())
        self.assertTrue(np.array_equal(binary_image, image))
        x_ref = result["signals"][0]["axes"][1]["data"]
        x_binary = np.frombuffer(bytes.fromhex(frames[x_ref["__array__"]]), x_ref["dtype"])
        self.assertEqual(as_json["ok"]["signals"][0]["axes"][1]["data"], x_binary.tolist())

    async def test_encoding_error_to_that_client_only(self) -> None:
        """A result that cannot be encoded (in the worker) is a -32603 error for
        that request; the next request is answered."""
        coordinator = self.start_coordinator()
        registry, image = _camera()
        await self.actor(registry, "broken", coordinator.endpoint)
        await self.actor(registry, "camera", coordinator.endpoint)
        client = await self.pyleco_client(coordinator.port)
        bad = await client.command(op="ask", receiver="N1.broken", method="call_action",
                                   params={"action": "grab"})
        self.assertEqual(bad["error"]["rpc"]["code"], INTERNAL_ERROR)
        self.assertIn("not JSON serializable", bad["error"]["rpc"]["data"])
        good = await client.command(op="ask", receiver="N1.camera", method="call_action",
                                    params={"action": "grab"})
        self.assertEqual(good["ok"]["signals"][0]["data"][0], image.tolist())
        self.flushLoggedErrors()
