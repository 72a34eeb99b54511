# -*- test-case-name: tests.test_leco_limits -*-
"""
A LECO sender cannot make an actor run unbounded work at once: at most
L{MAX_CONCURRENT} of its requests are in progress, the next wait their turn
(all answered, in order), and past L{MAX_QUEUED} waiting it gets an error
reply.  Real Coordinator and actor on loopback.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.test_leco_coordinator import CoordinatorMixin
from twisted_lab.errors import LabError
from twisted_lab.protocols.leco import component
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.registry import DeviceRegistry
from twisted_lab.testing import FakeDevice


class ConcurrencyTests(CoordinatorMixin, TestCase):
    """Per-sender limits on requests in progress and waiting."""

    timeout = 20

    async def start(self) -> tuple[Any, list[Deferred[Any]]]:
        started: list[Deferred[Any]] = []

        def slow(i: int) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            d.addCallback(lambda _: i)
            started.append(d)
            return d

        coordinator = self.start_coordinator()
        registry = DeviceRegistry(reactor)
        registry.register(FakeDevice("slow", {"x": 1.0}, actions={"slow": slow}))
        actor = DeviceActor(registry, "slow", coordinator.endpoint, reactor)
        actor.startService()
        self.addCleanup(actor.stopService)
        await actor.when_signed_in()
        return await self.component("client", coordinator), started

    async def settle(self) -> None:
        for _ in range(20):
            await deferLater(reactor, 0.01, lambda: None)

    async def test_waiting_requests_all_answered(self) -> None:
        """
        20 slow requests from one sender: C{MAX_CONCURRENT} start, the rest
        wait; as each finishes the next starts, and every one is answered.
        """
        client, started = await self.start()
        asks = [client.ask("slow", "call_action", {"action": "slow", "args": [i]}, timeout=15)
                for i in range(20)]
        await self.settle()
        self.assertEqual(len(started), component.MAX_CONCURRENT)
        while len(started) < 20 or not all(d.called for d in started):
            for d in list(started):
                if not d.called:
                    d.callback(None)
            await self.settle()
        results = await DeferredList(asks, consumeErrors=True)
        self.assertEqual([value[0] for ok, value in results], list(range(20)))

    async def test_too_many_waiting_refused(self) -> None:
        """Past C{MAX_QUEUED} waiting requests, a request gets an error reply at once."""
        self.patch(component, "MAX_QUEUED", 2)
        client, started = await self.start()
        asks = [client.ask("slow", "call_action", {"action": "slow", "args": [i]}, timeout=15)
                for i in range(component.MAX_CONCURRENT + 3)]
        try:
            await asks[-1]
        except LabError as e:
            self.assertIn("requests waiting", str(e))
        else:
            self.fail("the request past the queue was not refused")
        for d in started:
            d.callback(None)
        await self.settle()
        for d in list(started):
            if not d.called:
                d.callback(None)
        await DeferredList(asks[:-1], consumeErrors=True)
