# -*- test-case-name: tests.test_polling -*-
"""Tests for L{tests.polling.until}, the tests' polling helper."""
from __future__ import annotations

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.polling import until


class UntilTests(TestCase):
    """L{until} waits on the reactor for a condition."""

    async def test_returns_once_condition_holds(self) -> None:
        """It returns after the reactor made the condition true."""
        flag: list[bool] = []
        reactor.callLater(0.03, flag.append, True)
        await until(lambda: flag, timeout=2)
        self.assertEqual(flag, [True])

    async def test_fails_with_what(self) -> None:
        """Past the timeout it fails, naming the condition."""
        with self.assertRaises(AssertionError) as caught:
            await until(lambda: False, timeout=0.05, what="never")
        self.assertIn("never", str(caught.exception))
