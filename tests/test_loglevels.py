# -*- test-case-name: tests.test_loglevels -*-
"""
Tests for L{twisted_lab.loglevels}: LECO's C{set_log_level} changes what
the lab's log observer lets through, per component.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.test_leco_actor import lab
from tests.test_leco_coordinator import CoordinatorMixin
from twisted_lab import loglevels
from twisted_lab.protocols.leco.export import DeviceActor
from twisted_lab.protocols.leco.rpc import set_log_level


class _Observed:
    def install(self, case: Any) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        case.addCleanup(loglevels.install, loglevels.installed())
        self.observer = loglevels.filtering(seen.append)
        return seen


class FilteringTests(_Observed, SynchronousTestCase):
    """The installed predicate is the one L{loglevels.set_level} changes."""

    def test_set_level_per_namespace(self) -> None:
        """Raising one namespace's level hides its info lines, not other namespaces'."""
        seen = self.install(self)
        leco = Logger(namespace="twisted_lab.protocols.leco.coordinator", observer=self.observer)
        other = Logger(namespace="twisted_lab.protocols.plesty.server", observer=self.observer)
        leco.info("one")
        self.assertTrue(loglevels.set_level("twisted_lab.protocols.leco", LogLevel.error))
        leco.info("two")
        leco.warn("three")
        leco.error("four")
        other.info("five")
        self.assertEqual([e["log_format"] for e in seen], ["one", "four", "five"])

    def test_nothing_installed(self) -> None:
        """Without an installed predicate, set_level says it changed nothing."""
        self.addCleanup(loglevels.install, loglevels.installed())
        loglevels.install(None)
        self.assertFalse(loglevels.set_level("twisted_lab", LogLevel.debug))

    def test_rpc_function(self) -> None:
        """LECO's level names map onto ours: DEBUG lets debug lines through."""
        seen = self.install(self)
        log = Logger(namespace="twisted_lab.devices.x", observer=self.observer)
        log.debug("hidden")
        set_log_level({"level": "DEBUG"}, "twisted_lab.devices")
        log.debug("shown")
        self.assertEqual([e["log_format"] for e in seen], ["shown"])


class OverLECOTests(_Observed, CoordinatorMixin, TestCase):
    """A LECO client's C{set_log_level} reaches the lab's log filter."""

    timeout = 20

    async def test_actor_and_coordinator(self) -> None:
        """
        C{set_log_level} (an admin client) to an actor sets its device's
        namespace; to the Coordinator, LECO's; each answers success and the
        filter changed.
        """
        from twisted_lab.access import AccessPolicy

        self.install(self)
        # set_log_level needs the admin role (docs/security.md)
        coordinator = self.start_coordinator(policy=AccessPolicy.build(role="admin"))
        registry = lab()
        actor = DeviceActor(registry, "oven", "", reactor, hub=coordinator.local_hub,
                            role_of=coordinator.role_of)
        actor.startService()
        self.addCleanup(actor.stopService)
        await actor.when_signed_in()
        client = await self.component("client", coordinator)
        predicate = loglevels.installed()
        assert predicate is not None
        device_namespace = registry.lookup("oven").log.namespace
        self.assertEqual(predicate.logLevelForNamespace(device_namespace), LogLevel.info)
        self.assertEqual(await client.ask("oven", "set_log_level", {"level": "ERROR"}),
                         (None, []))
        self.assertEqual(predicate.logLevelForNamespace(device_namespace), LogLevel.error)
        self.assertEqual(predicate.logLevelForNamespace("twisted_lab.protocols.leco"),
                         LogLevel.info)
        await client.ask("COORDINATOR", "set_log_level", {"level": "DEBUG"})
        self.assertEqual(predicate.logLevelForNamespace("twisted_lab.protocols.leco.actor"),
                         LogLevel.debug)


class LabObserverTests(SynchronousTestCase):
    """The lab's own log observer (L{twisted_lab.logs}) is the one changed."""

    def test_make_observer_installs(self) -> None:
        """After C{make_observer}, L{loglevels.set_level} changes what it writes."""
        import io

        from twisted_lab.logs import make_observer

        self.addCleanup(loglevels.install, loglevels.installed())
        out = io.StringIO()
        observer = make_observer(out, "text", LogLevel.info, {})
        log = Logger(namespace="twisted_lab.protocols.leco.actor", observer=observer)
        log.debug("before")
        set_log_level({"level": "DEBUG"}, "twisted_lab.protocols.leco")
        log.debug("after")
        self.assertNotIn("before", out.getvalue())
        self.assertIn("after", out.getvalue())
