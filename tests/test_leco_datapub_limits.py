# -*- test-case-name: tests.test_leco_datapub_limits -*-
"""
The LECO data proxy bounds what subscribers make it hold: a subscription
past L{MAX_SUBSCRIPTION} bytes drops that subscriber before it is in
memory, topics past C{max_topics} are not passed on, and a subscriber's
topics are given back when it leaves.  Real sockets on loopback.
"""
from __future__ import annotations

from typing import Any, Callable

import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from twisted_lab.protocols.leco.datapub import MAX_SUBSCRIPTION, ProxyService


class ProxyLimitsTests(TestCase):
    """Subscriptions: size-limited, counted, freed."""

    def setUp(self) -> None:
        self.proxy = ProxyService(reactor, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                                  max_topics=3)
        self.proxy.startService()
        self.addCleanup(self.proxy.stopService)
        self.context: zmq.Context[Any] = zmq.Context()
        self.addCleanup(self.context.term)

    def subscriber(self, *topics: bytes) -> zmq.Socket[Any]:
        sub = self.context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(self.proxy.xpub_endpoint)
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        return sub

    async def until(self, condition: Callable[[], bool]) -> None:
        for _ in range(200):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail("condition not reached in 2 s")

    def test_topics_freed_when_subscriber_leaves(self) -> Deferred[None]:
        """A subscriber's topics are counted, then given back when it closes."""
        async def run() -> None:
            sub = self.subscriber(b"lab.stage", b"lab.cam")
            await self.until(lambda: self.proxy.topics == {b"lab.stage", b"lab.cam"})
            sub.close(0)
            await self.until(lambda: not self.proxy.topics)
        return Deferred.fromCoroutine(run())

    def test_oversize_subscription_dropped(self) -> Deferred[None]:
        """A subscription above L{MAX_SUBSCRIPTION} bytes never reaches the proxy."""
        async def run() -> None:
            big = self.subscriber(b"x" * (MAX_SUBSCRIPTION * 4))
            small = self.subscriber(b"lab.ok")
            await self.until(lambda: b"lab.ok" in self.proxy.topics)
            await deferLater(reactor, 0.1, lambda: None)
            self.assertEqual(self.proxy.topics, {b"lab.ok"})
            big.close(0)
            small.close(0)
        return Deferred.fromCoroutine(run())

    def test_topic_cap(self) -> Deferred[None]:
        """Past C{max_topics}, subscriptions are not passed on; leaving frees room."""
        async def run() -> None:
            first = self.subscriber(*[b"t%d" % i for i in range(10)])
            await self.until(lambda: len(self.proxy.topics) == 3)
            await deferLater(reactor, 0.1, lambda: None)
            self.assertEqual(len(self.proxy.topics), 3)
            first.close(0)
            await self.until(lambda: not self.proxy.topics)
            second = self.subscriber(b"lab.stage")
            await self.until(lambda: self.proxy.topics == {b"lab.stage"})
            second.close(0)
        return Deferred.fromCoroutine(run())
