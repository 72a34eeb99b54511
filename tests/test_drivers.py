"""
Tests for L{twisted_lab.drivers}: one worker thread per instrument.

These use the real reactor (the driver thread reports back with
C{callFromThread}); every runner is stopped and joined in a cleanup.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from twisted_lab.drivers import DriverRunner
from twisted_lab.errors import (DeviceBusy, DeviceOffline, DeviceTimeout, DriverError,
                                InvalidValue)


class DriverRunnerTests(TestCase):
    """L{DriverRunner} serialises calls, enforces deadlines and stops cleanly."""

    def runner(self, deadline: float = 5.0, start: bool = True) -> DriverRunner:
        runner = DriverRunner(reactor, "psu", deadline=deadline)
        if start:
            runner.start()
        self.addCleanup(runner.stop)
        return runner

    def gate(self) -> threading.Event:
        event = threading.Event()
        self.addCleanup(event.set)
        return event

    async def running(self, runner: DriverRunner, gate: threading.Event) -> Any:
        """Submit a call blocked on C{gate}; return its Deferred once it runs."""
        began = threading.Event()

        def blocked() -> bool:
            began.set()
            return gate.wait(30)

        d = runner.run(blocked)
        for _ in range(500):
            if began.is_set():
                break
            await deferLater(reactor, 0.005)
        self.assertTrue(began.is_set())
        return d

    async def test_runs_off_the_reactor_thread(self) -> None:
        """A call runs on the runner's own thread and its result comes back."""
        runner = self.runner()
        ident = await runner.run(threading.get_ident)
        self.assertNotEqual(ident, threading.get_ident())
        self.assertEqual(await runner.run(lambda a, b=0: a + b, 40, b=2), 42)
        self.assertEqual(await runner.run(threading.get_ident), ident)

    async def test_calls_are_serialised(self) -> None:
        """Calls to one runner never overlap and run in submission order."""
        runner = self.runner()
        log: list[str] = []
        active = [0]
        overlap = [False]

        def work(tag: str) -> str:
            active[0] += 1
            overlap[0] = overlap[0] or active[0] > 1
            time.sleep(0.01)
            log.append(tag)
            active[0] -= 1
            return tag

        results = [runner.run(work, str(i)) for i in range(6)]
        values = [await d for d in results]
        self.assertEqual(values, [str(i) for i in range(6)])
        self.assertEqual(log, [str(i) for i in range(6)])
        self.assertFalse(overlap[0])

    async def test_reactor_not_blocked(self) -> None:
        """While a driver call blocks, the reactor keeps running timers."""
        runner = self.runner()
        gate = self.gate()
        pending = runner.run(gate.wait, 5)
        ticks = 0
        for _ in range(3):
            await deferLater(reactor, 0.01)
            ticks += 1
        self.assertEqual(ticks, 3)
        self.assertNoResult(pending)
        gate.set()
        self.assertTrue(await pending)

    async def test_deadline_busy_until_return(self) -> None:
        """
        A call past its deadline fails with DeviceTimeout naming the device,
        the call and the deadline; the runner is busy until the driver
        returns, new calls fail at once with DeviceBusy, and calls queued
        behind it are told DeviceBusy instead of waiting silently.
        """
        runner = self.runner(deadline=0.1)
        gate = self.gate()
        ran: list[str] = []
        slow = runner.run(gate.wait, 10)
        queued = runner.run(ran.append, "queued")
        with self.assertRaises(DeviceTimeout) as caught:
            await slow
        message = str(caught.exception)
        self.assertIn("'psu'", message)
        self.assertIn("wait(10)", message)
        self.assertIn("0.1 s", message)
        self.assertTrue(runner.busy)
        with self.assertRaises(DeviceBusy) as busy:
            await queued
        self.assertIn("not run", str(busy.exception))
        with self.assertRaises(DeviceBusy) as refused:
            await runner.run(ran.append, "new")
        self.assertIn("wait(10)", str(refused.exception))
        gate.set()
        for _ in range(100):
            if not runner.busy:
                break
            await deferLater(reactor, 0.01)
        self.assertFalse(runner.busy)
        self.assertEqual(await runner.run(lambda: "again"), "again")
        self.assertEqual(ran, [])

    async def test_deadline_counts_from_start(self) -> None:
        """A queued call's deadline starts when it starts running, not when submitted."""
        runner = self.runner(deadline=2.0)
        first = runner.run(time.sleep, 0.3)
        second = runner.run(lambda: "ok", timeout=0.2)
        await first
        self.assertEqual(await second, "ok")

    async def test_per_call_timeout(self) -> None:
        """C{timeout=} overrides the runner's default deadline for one call."""
        runner = self.runner(deadline=10.0)
        gate = self.gate()
        with self.assertRaises(DeviceTimeout) as caught:
            await runner.run(gate.wait, 5, timeout=0.05)
        self.assertIn("0.05 s", str(caught.exception))

    async def test_driver_exception_becomes_driver_error(self) -> None:
        """A driver exception becomes DriverError carrying its type and reason."""
        runner = self.runner()

        def broken() -> None:
            raise OSError("VI_ERROR_TMO: timeout expired")

        with self.assertRaises(DriverError) as caught:
            await runner.run(broken)
        self.assertIn("OSError", str(caught.exception))
        self.assertIn("VI_ERROR_TMO", str(caught.exception))
        self.assertIsInstance(caught.exception.__cause__, OSError)
        self.assertFalse(runner.busy)

    async def test_lab_errors_pass_unchanged(self) -> None:
        """A LabError raised by the driver is not wrapped."""
        runner = self.runner()

        def refuse() -> None:
            raise InvalidValue("out of range")

        with self.assertRaises(InvalidValue):
            await runner.run(refuse)

    async def test_not_started(self) -> None:
        """Calls to a runner that is not started fail with DeviceOffline."""
        runner = self.runner(start=False)
        with self.assertRaises(DeviceOffline) as caught:
            await runner.run(lambda: 1)
        self.assertIn("not running", str(caught.exception))

    async def test_stop_joins_thread(self) -> None:
        """stop() fires once the worker thread has finished; later calls fail."""
        runner = self.runner()
        await runner.run(lambda: None)
        assert runner._pool is not None
        threads = list(runner._pool.threads)
        self.assertTrue(threads)
        await runner.stop()
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertFalse(runner.started)
        with self.assertRaises(DeviceOffline):
            await runner.run(lambda: 1)
        await runner.stop()  # idempotent

    async def test_stop_fails_queued_calls(self) -> None:
        """Calls still queued at stop fail with DeviceOffline; the running one completes."""
        runner = self.runner()
        gate = self.gate()
        running = await self.running(runner, gate)
        queued = runner.run(lambda: "never")
        stopped = runner.stop()
        with self.assertRaises(DeviceOffline):
            await queued
        gate.set()
        self.assertTrue(await running)
        await stopped

    async def test_stop_gives_up_on_stuck_call(self) -> None:
        """stop(timeout) fires even if a driver call never returns; that call fails."""
        runner = self.runner(deadline=10.0)
        gate = self.gate()
        stuck = await self.running(runner, gate)
        await runner.stop(timeout=0.1)
        with self.assertRaises(DeviceOffline):
            await stuck

    async def test_cancel_queued_call(self) -> None:
        """Cancelling a queued call's Deferred means it never runs."""
        runner = self.runner()
        gate = self.gate()
        ran: list[int] = []
        running = runner.run(gate.wait, 5)
        queued = runner.run(ran.append, 1)
        queued.cancel()
        with self.assertRaises(CancelledError):
            await queued
        gate.set()
        await running
        await runner.run(lambda: None)
        self.assertEqual(ran, [])

    async def test_is_a_service(self) -> None:
        """As a child service, the runner's thread starts and stops with its parent."""
        runner = self.runner(start=False)
        verifyObject(IService, runner)
        parent = MultiService()
        runner.setServiceParent(parent)
        parent.startService()
        self.assertTrue(runner.started)
        self.assertEqual(await runner.run(lambda: 7), 7)
        await parent.stopService()
        self.assertFalse(runner.started)

    def test_bad_deadline(self) -> None:
        """A non-positive default deadline is refused at construction."""
        self.assertRaises(ValueError, DriverRunner, reactor, "x", deadline=0)


