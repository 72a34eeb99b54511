# -*- test-case-name: tests.test_la4_node -*-
"""
A simulated LA4 node that speaks pycom and never runs a shell.

L{SimulatedNode} listens (127.0.0.1:5000 by default), answers heartbeats,
accepts C{cmd} only in the allow-listed grammar of
L{twisted_lab.protocols.la4.commands} and applies it to a L{BoardState};
anything else is answered with an error C{output} event and nothing runs.
Events go on a new connection to the I{observed} address of the requester
and the port its request named, one at a time per destination, with one
retry and a per-host rate limit.  It heartbeats the peers it knows every 3 s,
forgets them after 15 s of silence, and (only when configured) scans a
small range for a coordinator, as spec §4.2 describes.
"""
from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_lab.errors import ProtocolError
from twisted_lab.interfaces import IWireReport
from twisted_lab.formats.la4.board import effect
from twisted_lab.formats.la4.registers import Row
from twisted_lab.protocols.la4.commands import (Boardio, CommandLine, CommandRejected,
                                                WriteRows, parse_command)
from twisted_lab.protocols.la4.message import (Command, Heartbeat, Message, MessageEvent,
                                               OutputEvent, UnitInfo, UnknownMessage, new_id)
from twisted_lab.protocols.la4.transport import (CONNECT_TIMEOUT, MAX_CONNECTIONS, MAX_MESSAGE,
                                                 READ_TIMEOUT, DocumentFactory, ListenWaiters,
                                                 Outgoing, listen_now, send_message,
                                                 stop_listening)

__all__ = ["BoardState", "SimulatedNode", "REJECTED_PREFIX", "BOARDIO_READY", "BOARDIO_ERROR",
           "SEQUENCE_COMPLETE"]

#: Start of the C{output} text of a refused request.
REJECTED_PREFIX = "LA4_SIM_ERROR: "
#: The C{message} text of a boardio verb that worked.
BOARDIO_READY = "BOARDIO_READY"
#: The C{message} text of a boardio verb that failed.
BOARDIO_ERROR = "BOARDIO_ERROR"
#: The C{message} text after C{runSeq} ran the loaded sequence.
SEQUENCE_COMPLETE = "Sequence complete"
#: Events waiting for one destination, at most (more are dropped and logged).
MAX_QUEUED = 100


@dataclass
class BoardState:
    """
    The simulated LA4 hardware.

    @ivar model_light: model light power, % (0 = off).
    @ivar fans: LED fans on.
    @ivar polarizer: digital polarizer on.
    @ivar sequence_file: rows of C{la4_sequence.csv}, C{None} while missing.
    @ivar standalone_file: rows of C{la4_sequence_standalone.csv}, C{None} while missing.
    @ivar loaded: the sequence loaded into the firmware (C{uSeq}).
    @ivar standalone: the standalone sequence loaded (C{uSeqStandalone}).
    @ivar shots: LED flashes fired so far.
    @ivar last_fired: the last C{ALL_4_*}/C{OLAT_4_*} row run, as text.
    @ivar runs: sequences run so far.
    """

    model_light: int = 0
    fans: bool = False
    polarizer: bool = False
    sequence_file: tuple[Row, ...] | None = None
    standalone_file: tuple[Row, ...] | None = None
    loaded: tuple[Row, ...] = ()
    standalone: tuple[Row, ...] = ()
    shots: int = 0
    last_fired: str = ""
    runs: int = 0

    def apply(self, row: Row) -> None:
        """Run one (validated) row on the board (L{twisted_lab.formats.la4.board})."""
        done = effect(row)
        if done.setting is not None:
            setattr(self, *done.setting)
        if done.shots:
            self.shots += len(done.shots)
            self.last_fired = row.render()

    def execute(self, line: CommandLine) -> tuple[str, list[str]]:
        """
        Run an allow-listed command line.

        @return: the C{output} text and the C{message} texts that follow it.
        """
        output: list[str] = []
        messages: list[str] = []
        for step in line.steps:
            if isinstance(step, WriteRows):
                if step.target == "sequence":
                    self.sequence_file = step.rows
                else:
                    self.standalone_file = step.rows
                continue
            assert isinstance(step, Boardio)
            output.append(f'BOARDIO_CLI: Sent: "{step.verb}" to FIFO file\n')
            if step.verb == "uSeq":
                if not self.sequence_file:
                    messages.append(BOARDIO_ERROR)
                else:
                    self.loaded = self.sequence_file
                    messages.append(BOARDIO_READY)
            elif step.verb == "uSeqStandalone":
                if not self.standalone_file:
                    messages.append(BOARDIO_ERROR)
                else:
                    self.standalone = self.standalone_file
                    messages.append(BOARDIO_READY)
            else:  # runSeq
                if not self.loaded:
                    messages.append(BOARDIO_ERROR)
                else:
                    for row in self.loaded:
                        self.apply(row)
                    self.runs += 1
                    messages.extend([BOARDIO_READY, SEQUENCE_COMPLETE])
        return "".join(output), messages

    def snapshot(self) -> dict[str, Any]:
        """The visible state as plain values."""
        return {"model_light": self.model_light, "fans": self.fans,
                "polarizer": self.polarizer, "shots": self.shots,
                "last_fired": self.last_fired, "runs": self.runs,
                "loaded": [r.render() for r in self.loaded],
                "standalone": [r.render() for r in self.standalone]}


@dataclass
class _Peer:
    id: str
    name: str
    host: str
    port: int
    version: str
    coordinator: bool
    last_seen: float
    unit_info_sent: bool = False


@dataclass
class _Outbox:
    queue: list[Message] = field(default_factory=list)
    busy: bool = False


@implementer(IWireReport)
class SimulatedNode(Service):
    """
    A pycom node emulator (see the module docstring).

    @param reactor: for listening and connecting.
    @param clock: for every timer; C{reactor} when not given.
    @param port: listening port (C{0}: ephemeral; read L{port} once listening).
    @param interface: listening address.
    @param coordinator: a C{(host, port)} to heartbeat even before it speaks.
    @param allowed_peers: networks requests are accepted from; empty for any.
    @param callback_ports: ports events may be sent to; empty for 1-65535.
    @param events_per_second: events per destination host per second (burst
        the same; further events wait their turn); C{0} for no limit.
    @param scan: a network of at most 256 addresses to scan for a
        coordinator; C{""} for no scan (the default).
    @param command_delay: seconds each command takes (commands run one at a time).
    @param boardio_messages: send the C{message} events (C{BOARDIO_READY},
        C{Sequence complete}) that follow a boardio verb's output.
    """

    log = Logger()
    #: Log a debug line per command run (a log event costs as much as the
    #: command itself, so it is off by default).
    trace_commands = False

    def __init__(self, reactor: Any, clock: IReactorTime | None = None, *,
                 port: int = 5000, interface: str = "127.0.0.1", ip: str = "",
                 name: str = "rigsters-controller", version: str = "0.14.0",
                 node_id: str | None = None, coordinator: tuple[str, int] | None = None,
                 heartbeat_interval: float = 3.0, offline_after: float = 15.0,
                 allowed_peers: Sequence[str] = (), callback_ports: Sequence[int] = (),
                 events_per_second: float = 100.0, scan: str = "", scan_port: int = 5000,
                 scan_interval: float = 5.0, scan_timeout: float = 0.3,
                 command_delay: float = 0.0, boardio_messages: bool = True,
                 max_message: int = MAX_MESSAGE,
                 read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS,
                 board: BoardState | None = None) -> None:
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.listen_port = port
        self.interface = interface
        self.id = node_id or new_id()
        self.node_name = name
        self.version = version
        self.ip = ip or (interface if interface not in ("", "0.0.0.0", "::") else "127.0.0.1")
        self.coordinator = coordinator
        self.heartbeat_interval = heartbeat_interval
        self.offline_after = offline_after
        self.callback_ports = frozenset(callback_ports)
        self.events_per_second = events_per_second
        self.scan_network = _scan_network(scan) if scan else None
        self.scan_port = scan_port
        self.scan_interval = scan_interval
        self.scan_timeout = scan_timeout
        self.command_delay = command_delay
        self.boardio_messages = boardio_messages
        self.board = board if board is not None else BoardState()
        self.factory = DocumentFactory(self, self.clock, max_message, read_timeout,
                                       max_connections, allowed_peers)
        self.peers: dict[str, _Peer] = {}
        #: The last 1000 requests handled, as C{(kind, accepted)}; for tests and logs.
        self.handled: deque[tuple[str, bool]] = deque(maxlen=1000)
        self._outboxes: dict[tuple[str, int], _Outbox] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._commands: list[tuple[Command, str]] = []
        self._running_command = False
        self._command_wait: Deferred[None] | None = None
        self._listening: IListeningPort | None = None
        self._bound_port = port
        self._waiters = ListenWaiters()
        self._heartbeat = LoopingCall(self._tick)
        self._heartbeat.clock = self.clock
        self._scanner = LoopingCall(self._scan)
        self._scanner.clock = self.clock
        self._scan_limit = DeferredSemaphore(32)
        self._outgoing = Outgoing()
        self._delayed: list[IDelayedCall] = []

    # -- service -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (the configured one until listening)."""
        if self._listening is not None:
            return self._bound_port
        return self.listen_port

    def wire_report(self) -> dict[str, Any]:
        """The node's listening port and the peers (coordinators) it knows."""
        listeners = [f"tcp://{self.interface}:{self.port}"] if self.running and self.port else []
        return {"listeners": listeners, "peers": [
            {"peer": f"{p.host}:{p.port}", "state": "coordinator" if p.coordinator else "node",
             "device": p.name} for p in list(self.peers.values())]}

    def startService(self) -> None:
        """Listen, then start heartbeating (and scanning, when configured)."""
        super().startService()
        cls = TCP6ServerEndpoint if ":" in self.interface else TCP4ServerEndpoint
        endpoint = cls(self.reactor, self.listen_port, interface=self.interface)
        d = endpoint.listen(self.factory)
        listen_now(d, self._listening_on, self._listen_failed, self._waiters, self.stopService)

    def _listening_on(self, port: IListeningPort) -> None:
        self._bound_port = int(getattr(port.getHost(), "port"))
        self._listening = port
        self.factory.listening(port)
        self.log.info("simulated LA4 node {id} listening on {interface}:{port}", id=self.id,
                      interface=self.interface, port=self.port)
        self._heartbeat.start(self.heartbeat_interval, now=self.coordinator is not None)
        if self.scan_network is not None:
            self._scanner.start(self.scan_interval, now=True)
        self._waiters.fire(self.port)

    def _listen_failed(self, failure: Failure) -> None:
        self.log.failure("simulated LA4 node cannot listen on {interface}:{port}", failure,
                         interface=self.interface, port=self.listen_port)
        self._waiters.fail(failure)

    def when_listening(self) -> Deferred[int]:
        """@return: a new L{Deferred} firing with the port once listening."""
        return self._waiters.when_or_now(self._listening is not None, self.port)

    def stopService(self) -> Deferred[None]:
        """Stop the timers and the listener; fires once outgoing connections ended."""
        super().stopService()
        for loop in (self._heartbeat, self._scanner):
            if loop.running:
                loop.stop()
        for call in self._delayed:
            if call.active():
                call.cancel()
        self._delayed = []
        self._outboxes.clear()
        self._commands = []
        if self._command_wait is not None:
            self._command_wait.cancel()
        port, self._listening = self._listening, None
        return stop_listening(port, self._outgoing)

    # -- identity ----------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.node_name, "ip": self.ip, "port": self.port,
                "version": self.version, "coordinator": False}

    def heartbeat(self) -> Heartbeat:
        """Our heartbeat / announcement."""
        return Heartbeat(**self._base())

    # -- incoming ----------------------------------------------------------------

    def message_received(self, message: Message, host: str) -> None:
        """A valid document from C{host} (see L{DocumentHandler})."""
        self._seen(message, host)
        if isinstance(message, Command):
            self._commands.append((message, host))
            self._next_command()
        elif isinstance(message, UnknownMessage):
            self.handled.append((message.kind, False))
            self.log.warn("LA4 node: unknown request type {kind!r} from {peer}",
                          kind=message.kind[:40], peer=host)
            self._error(host, message.port, f"unknown request type_ {message.kind[:40]!r}")
        else:
            self.handled.append((message.type_ or "heartbeat", True))

    def message_rejected(self, error: ProtocolError, host: str) -> None:
        """A bad document: answer with an error C{output} when we know where."""
        self.handled.append(("invalid", False))
        port = error.details.get("port")
        if isinstance(port, int):
            self._error(host, port, error.message)

    def _seen(self, message: Message, host: str) -> None:
        now = self.clock.seconds()
        peer = self.peers.get(message.id)
        new = peer is None or (peer.host, peer.port) != (host, message.port)
        if peer is None:
            peer = _Peer(message.id, message.name, host, message.port, message.version,
                         message.coordinator, now)
            self.peers[message.id] = peer
            self.log.info("LA4 node: new peer {peer_id} ({name}) at {peer}:{port}",
                          peer_id=message.id, name=message.name[:60], peer=host,
                          port=message.port)
        peer.name, peer.host, peer.port = message.name, host, message.port
        peer.version, peer.coordinator, peer.last_seen = (message.version,
                                                          message.coordinator, now)
        if new:
            self._deliver(host, peer.port, self.heartbeat())
        if peer.coordinator:
            if not peer.unit_info_sent:
                peer.unit_info_sent = True
                self._deliver(host, peer.port, self.unit_info())
            if self._scanner.running:
                self.log.info("LA4 node: found coordinator {peer}:{port}; scan stopped",
                              peer=host, port=peer.port)
                self._scanner.stop()

    def unit_info(self) -> UnitInfo:
        """The one-time hardware description sent to a coordinator."""
        return UnitInfo(fields={
            "model": "LightArray4 (simulated)", "heads": 4, "serial": f"SIM-{self.id}",
            "firmware": "sim", "simulated": True}, **self._base())

    # -- commands ----------------------------------------------------------------

    def _next_command(self) -> None:
        if self._running_command or not self._commands:
            return
        self._running_command = True
        command, host = self._commands.pop(0)
        if self.command_delay > 0:
            d = deferLater(self.clock, self.command_delay, self._run_command, command, host)
            self._command_wait = d
        else:
            d = Deferred()
            self._run_command(command, host)
            d.callback(None)

        def next_one(_: object) -> None:
            self._command_wait = None
            self._running_command = False
            if self.running:
                self._next_command()

        d.addErrback(lambda f: None if f.check(CancelledError) else
                     self.log.failure("LA4 node: command failed", f))
        d.addBoth(next_one)

    def _run_command(self, command: Command, host: str) -> None:
        try:
            line = parse_command(command.command)
        except CommandRejected as e:
            self.handled.append(("cmd", False))
            self.log.warn("LA4 node: refused command from {peer}: {reason}", peer=host,
                          reason=e.message)
            self._error(host, command.port, f"command refused: {e.message}")
            return
        self.handled.append(("cmd", True))
        output, messages = self.board.execute(line)
        if self.trace_commands:  # off the hot path unless asked for
            self.log.debug("LA4 node: ran {steps} step(s) for {peer}", steps=len(line.steps),
                           peer=host)
        self._deliver(host, command.port, OutputEvent(output=output, **self._base()))
        for text in messages if self.boardio_messages else ():
            self._deliver(host, command.port, MessageEvent(message=text, **self._base()))

    def _error(self, host: str, port: int, reason: str) -> None:
        self._deliver(host, port, OutputEvent(output=REJECTED_PREFIX + reason + "\n",
                                              **self._base()))

    # -- outgoing ----------------------------------------------------------------

    def _rate_wait(self, host: str) -> float:
        """Take a token for C{host}: 0, or the seconds to wait before sending."""
        rate = self.events_per_second
        if rate <= 0:
            return 0.0
        now = self.clock.seconds()
        tokens, then = self._buckets.get(host, (rate, now))
        tokens = min(rate, tokens + (now - then) * rate)
        if tokens < 1:
            self._buckets[host] = (tokens, now)
            return (1 - tokens) / rate
        self._buckets[host] = (tokens - 1, now)
        return 0.0

    def _deliver(self, host: str, port: int, message: Message) -> None:
        """Queue an event for C{host:port}, in order, on new connections."""
        if not host or not 0 < port < 65536 or (self.callback_ports and
                                                port not in self.callback_ports):
            self.log.warn("LA4 node: not sending to {peer}:{port} (port not allowed)",
                          peer=host, port=port)
            return
        if not self.running:
            return
        outbox = self._outboxes.setdefault((host, port), _Outbox())
        if len(outbox.queue) >= MAX_QUEUED:
            self.log.warn("LA4 node: {count} events queued for {peer}:{port}; event dropped",
                          count=len(outbox.queue), peer=host, port=port)
            return
        outbox.queue.append(message)
        if not outbox.busy:
            self._pump(host, port, outbox)

    def _pump(self, host: str, port: int, outbox: _Outbox) -> None:
        self._delayed = [c for c in self._delayed if c.active()]
        if not outbox.queue or not self.running:
            outbox.busy = False
            if self._outboxes.get((host, port)) is outbox:
                del self._outboxes[(host, port)]
            return
        outbox.busy = True
        wait = self._rate_wait(host)
        if wait > 0:
            self._delayed.append(self.clock.callLater(wait, self._pump, host, port, outbox))
            return
        message = outbox.queue.pop(0)
        data = message.encode()
        d = self._send(host, port, data)
        d.addErrback(lambda _f: self._send(host, port, data))  # one retry

        def failed(f: Failure) -> None:
            self.log.warn("LA4 node: could not deliver {kind} to {peer}:{port}: {reason}",
                          kind=message.type_ or "heartbeat", peer=host, port=port,
                          reason=f.getErrorMessage())

        d.addErrback(failed)
        d.addBoth(lambda _: self._pump(host, port, outbox))

    def _send(self, host: str, port: int, data: bytes,
              timeout: float = CONNECT_TIMEOUT) -> Deferred[None]:
        """Deliver one encoded message on a new connection (tests replace this)."""
        return self._outgoing.track(send_message(self.reactor, host, port, data, timeout))

    def _tick(self) -> None:
        """Heartbeat every known peer; forget the silent ones."""
        now = self.clock.seconds()
        for peer_id, peer in list(self.peers.items()):
            if now - peer.last_seen > self.offline_after:
                self.log.info("LA4 node: peer {peer_id} at {peer}:{port} went silent",
                              peer_id=peer_id, peer=peer.host, port=peer.port)
                del self.peers[peer_id]
        targets = {(p.host, p.port) for p in self.peers.values()}
        if self.coordinator is not None:
            targets.add(self.coordinator)
        beat = self.heartbeat()
        for host, port in sorted(targets):
            self._deliver(host, port, beat)
        if (self.scan_network is not None and not self._scanner.running
                and not any(p.coordinator for p in self.peers.values())):
            self.log.info("LA4 node: no coordinator; scanning again")
            self._scanner.start(self.scan_interval, now=True)

    def _scan(self) -> None:
        """Announce ourselves to every host of the scan range (bounded, opt-in)."""
        assert self.scan_network is not None
        hosts = list(self.scan_network.hosts()) or [self.scan_network.network_address]
        data = self.heartbeat().encode()
        for address in hosts:
            d = self._scan_limit.run(self._send, str(address), self.scan_port, data,
                                     self.scan_timeout)
            d.addErrback(lambda _f: None)


def _scan_network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    network = ipaddress.ip_network(cidr, strict=False)
    if network.num_addresses > 256:
        raise ValueError(f"scan range {cidr!r} is larger than a /24")
    return network
