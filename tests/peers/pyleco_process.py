"""
Run the pyleco peer scripts as child processes of a trial test (twisted
side; imported by tests/test_leco_interop.py, never inside the venv).
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

from tests.peers import peer_env, peer_python

HERE = pathlib.Path(__file__).resolve().parent


class PeerProcess(ProcessProtocol):
    """A pyleco peer script: lines in on stdin, lines out on stdout."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.stderr = b""
        self._buffer = b""
        self._waiters: list[Deferred[str]] = []
        self.ended: Deferred[None] = Deferred()
        self.exited = False

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self.lines.append(line.decode())
            self._wake()

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def _wake(self) -> None:
        while self._waiters and self.lines:
            self._waiters.pop(0).callback(self.lines.pop(0))

    def processEnded(self, reason: Any) -> None:
        self.exited = True
        for waiter in self._waiters:
            waiter.errback(RuntimeError("peer exited: " + self.stderr.decode()[-2000:]))
        self._waiters = []
        self.ended.callback(None)

    def line(self, timeout: float = 30) -> Deferred[str]:
        """The next stdout line."""
        d: Deferred[str] = Deferred()
        if self.exited and not self.lines:
            d.errback(RuntimeError("peer exited: " + self.stderr.decode()[-2000:]))
            return d
        self._waiters.append(d)
        self._wake()
        return d.addTimeout(timeout, reactor)

    def write_line(self, text: str) -> None:
        self.transport.write(text.encode() + b"\n")  # type: ignore[union-attr]

    async def command(self, **cmd: Any) -> Any:
        """Send a JSON command (client mode) and return its JSON answer."""
        self.write_line(json.dumps(cmd))
        return json.loads(await self.line())

    async def stop(self) -> None:
        if not self.exited:
            try:
                self.transport.closeStdin()  # type: ignore[union-attr]
            except Exception:
                pass
            timer = reactor.callLater(5, self._kill)
            await self.ended
            if timer.active():
                timer.cancel()

    def _kill(self) -> None:
        if not self.exited:
            try:
                self.transport.signalProcess("KILL")  # type: ignore[union-attr]
            except Exception:
                pass


def spawn(test: Any, script: str, *args: str) -> PeerProcess:
    """Start C{tests/peers/<script>} in the pyleco venv; stopped by test cleanup."""
    python = peer_python("pyleco")  # raises PeerMissing: the test fails
    proto = PeerProcess()
    reactor.spawnProcess(proto, str(python), [str(python), str(HERE / script), *map(str, args)],
                         env=peer_env("pyleco"), path=str(HERE))
    test.addCleanup(proto.stop)
    return proto
