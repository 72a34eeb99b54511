# -*- test-case-name: tests.test_pymodaq_interop -*-
"""
Support for the interop tests with the real pymodaq 4.4.11 (no tests here):
L{PeerProcess} runs a driver script of C{tests/peers/} in the pymodaq4 venv
and exchanges JSON lines with it.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from tests.peers import PEERS_DIR, peer_env, peer_python

HERE = pathlib.Path(__file__).resolve().parent / "peers"


class PeerProcess(ProcessProtocol):
    """
    A peer driver process: JSON lines out (events), JSON lines in (commands).

    @ivar events: every event received, in order.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._unread: list[dict[str, Any]] = []
        self._waiters: list[tuple[str, Deferred[dict[str, Any]]]] = []
        self._buffer = b""
        self.stderr = b""
        self.ended: Deferred[None] = Deferred()
        self.running = True

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            self._unread.append(event)
        self._dispatch()

    def errReceived(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-20000:]

    def _dispatch(self) -> None:
        for op, d in list(self._waiters):
            for event in self._unread:
                if event.get("op") == op:
                    self._unread.remove(event)
                    self._waiters.remove((op, d))
                    d.callback(event)
                    break

    def next(self, op: str, timeout: float = 20.0) -> Deferred[dict[str, Any]]:
        """The next unread event C{op} (fails after C{timeout} seconds)."""
        from twisted.internet import reactor

        d: Deferred[dict[str, Any]] = Deferred()
        self._waiters.append((op, d))
        self._dispatch()
        if not d.called:
            def gone(failure: Failure) -> Failure:
                if (op, d) in self._waiters:
                    self._waiters.remove((op, d))
                raise AssertionError(
                    f"peer sent no {op!r} within {timeout} s; events: {self.events[-8:]}; "
                    f"stderr: {self.stderr.decode(errors='replace')[-3000:]}")
            d.addTimeout(timeout, reactor).addErrback(gone)
        return d

    def send(self, **command: Any) -> None:
        """Send one command."""
        if self.running and self.transport is not None:
            self.transport.write(json.dumps(command).encode() + b"\n")

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.ended.callback(None)

    async def stop(self) -> None:
        """Ask it to quit; kill it if it does not."""
        from twisted.internet import reactor

        if not self.running:
            return
        self.send(op="quit")
        ended = self.ended
        self.ended = Deferred()
        ended.addBoth(lambda _: self.ended.callback(None))
        try:
            await defer.gatherResults([self.ended]).addTimeout(10, reactor)
        except defer.TimeoutError:
            if self.running:
                self.transport.signalProcess("KILL")
                await self.ended


def start_peer(testcase: Any, script: str, *args: str, peer: str = "pymodaq4") -> PeerProcess:
    """
    Start C{tests/peers/<script>} in a PyMoDAQ 4 venv, stopped at cleanup.

    @param peer: the venv (C{pymodaq4} is 4.4.11; C{pymodaq41}, C{pymodaq42},
        C{pymodaq43} the older lines).
    @raise tests.peers.PeerMissing: the venv is not installed (the test fails).
    """
    from twisted.internet import reactor

    python = str(peer_python(peer))
    proto = PeerProcess()
    reactor.spawnProcess(proto, python, [python, str(HERE / script), *args],
                         env=peer_env(peer), path=str(PEERS_DIR))
    testcase.addCleanup(lambda: Deferred.fromCoroutine(proto.stop()))
    return proto


def make_camera(name: str = "camera", dim: str = "Data2D") -> Any:
    """
    A detector with an C{exposure} parameter whose grab gives C{dim} data
    with axes and units (counts; axes in mm).
    """
    import numpy as np

    from twisted_lab.data import Axis, Export, Signal
    from twisted_lab.description import Parameter
    from twisted_lab.devices.base import BaseDetector

    shapes = {"Data0D": (1,), "Data1D": (5,), "Data2D": (3, 4)}

    class Camera(BaseDetector):
        dims = (dim,)

        def __init__(self) -> None:
            super().__init__(name, [Parameter("exposure", "float", units="s", minimum=0.0,
                                              maximum=10.0, default=0.1)])

        def _grab(self) -> Export:
            shape = shapes[dim]
            data = np.arange(float(np.prod(shape))).reshape(shape) + 1.0
            axes = [] if dim == "Data0D" else [
                Axis(f"axis{i}", "mm", np.arange(n) * 0.5, i) for i, n in enumerate(shape)]
            return Export(name, [Signal(name, [data], units="counts", axes=axes,
                                        kind="DataFromPlugins")])

    return Camera()
