"""
Smoke test of the pyleco 0.6.0.post1 peer, run inside its venv:

    .peers/pyleco/bin/python tests/peers/smoke_pyleco.py      # env: peer_env("pyleco")

Everything binds 127.0.0.1 only.  Verified snippets (copy them):

1. A Coordinator on loopback and a free port (tests/peers/leco_coordinator.py
   packages this as ``start_coordinator()`` and as a process).  ``Coordinator.__init__`` calls
   ``self.sock.bind(port=port)`` and ``ZmqMultiSocket.bind`` defaults to host
   ``"*"`` (every interface) -- there is no host argument for the bind
   (``host=`` is only the address it *advertises*).  Pass your own
   multi-socket that forces the host; port ``"*"`` lets zmq pick a free one::

       import threading, zmq
       from pyleco.coordinators.coordinator import Coordinator
       from pyleco.utils.coordinator_utils import ZmqMultiSocket

       class LoopbackMultiSocket(ZmqMultiSocket):
           def bind(self, host="127.0.0.1", port="*"):
               self._sock.bind(f"tcp://127.0.0.1:{port}")
               endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
               self.port = int(endpoint.rsplit(":", 1)[1])

       ms = LoopbackMultiSocket()
       coordinator = Coordinator(namespace="N1", host="127.0.0.1", port="*", multi_socket=ms)
       port = ms.port
       stop = threading.Event()
       def route():
           try:
               coordinator.routing(stop_event=stop)   # blocking loop, polls every 50 ms
           finally:
               coordinator.close()                    # close in the routing thread (zmq)
       thread = threading.Thread(target=route, daemon=True); thread.start()
       ...
       stop.set(); thread.join()

   (``coordinator.address`` then reads ``"127.0.0.1:*"``; it is only sent to
   *other* Coordinators, irrelevant for a single node.)

2. An Actor (a MessageHandler controlling a device object) in a thread::

       from pyleco.actors.actor import Actor
       class Device:                       # any class; Actor instantiates it
           def __init__(self, *a, **kw): self.value = 0
           def close(self): pass
       actor = Actor("dev", device_class=Device, host="127.0.0.1", port=port)
       actor.connect()                     # instantiates Device() -> actor.device
       actor.register_rpc_method(lambda x: x * 2, name="double")  # own RPC
       actor_stop = threading.Event()
       threading.Thread(target=actor.listen, kwargs={"stop_event": actor_stop},
                        daemon=True).start()
       ...
       actor_stop.set()                    # listen() signs out and closes on exit

   RPC methods of every Actor: get_parameters(parameters=[...]),
   set_parameters(parameters={...}), call_action(action, args, kwargs),
   connect, disconnect, start_polling, stop_polling, get/set_polling_interval,
   plus those of every MessageHandler: pong, set_log_level, shut_down (and
   rpc.discover, which get_rpc_capabilities() calls).
   ``actor.register_device_method(actor.device.scale)`` exposes
   "device.scale".
   The Actor also makes a DataPublisher that *connects* (not binds) to
   localhost:11100 (the LECO data proxy); harmless if none runs.

3. A Listener (a MessageHandler in its own thread, with Communicators for the
   calling thread)::

       from pyleco.utils.listener import Listener
       listener = Listener(name="lis", host="127.0.0.1", port=port)
       listener.start_listen()             # waits until signed in (<= 0.5 s)
       listener.register_rpc_method(lambda a, b: a + b, name="add")
       com = listener.get_communicator()   # for this thread
       com.ask_rpc(receiver="N1.dev", method="double", x=21)  -> 42
       listener.stop_listen()

4. A Director (RPC client) and a bare Communicator::

       from pyleco.directors.director import Director
       with Director(actor="N1.dev", name="director", host="127.0.0.1", port=port,
                     timeout=2) as director:          # default timeout is 0.1 s!
           director.ask_rpc("double", x=21)           -> 42
           director.get_parameters(["value"])         -> {"value": 0}
           director.set_parameters({"value": 5})
           director.call_action("method_name", 1, 2, key=3)
           director.get_rpc_capabilities()            -> rpc.discover dict
       from pyleco.utils.communicator import Communicator
       with Communicator(name="com", host="127.0.0.1", port=port, timeout=2) as com:
           com.ask_rpc(receiver="N1.lis", method="add", a=1, b=2)   -> 3
           com.ask_rpc(receiver="COORDINATOR", method="send_local_components")
               -> e.g. ["dev", "lis", "com"]  (signed-in names, any order)

   Names: a component signs in as ``name``; the Coordinator gives it the
   namespace, so its full name is ``"N1.name"``.  Within one node
   ``"dev"`` and ``"N1.dev"`` both route.  A second sign-in with a name
   already in use is refused: the Coordinator answers JSON-RPC error
   -32091 "The name is already taken." and ``Communicator.sign_in()`` /
   ``with Communicator(...)`` raises ``ConnectionRefusedError("Sign in failed.")``.

Exit status 0 and a final line ``pyleco smoke OK`` mean all of this worked.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import zmq

import pyleco
from pyleco.actors.actor import Actor
from pyleco.coordinators.coordinator import Coordinator
from pyleco.directors.director import Director
from pyleco.utils.communicator import Communicator
from pyleco.utils.listener import Listener

from leco_coordinator import LoopbackMultiSocket  # tests/peers/leco_coordinator.py


class Device:
    def __init__(self, *args, **kwargs) -> None:
        self.value = 0
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def scale(self, factor: float) -> float:
        self.value *= factor
        return self.value


def check(label: str, got, expected) -> None:
    status = "ok" if got == expected else "MISMATCH"
    print(f"{label}: {got!r} ({status})", flush=True)
    if got != expected:
        raise SystemExit(f"{label}: expected {expected!r}, got {got!r}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    print("pyleco", getattr(pyleco, "__version__", "?"), "zmq", zmq.zmq_version(), flush=True)

    # the long form of leco_coordinator.start_coordinator(), as documented above
    ms = LoopbackMultiSocket()
    coordinator = Coordinator(namespace="N1", host="127.0.0.1", port="*", multi_socket=ms)
    port = ms.port
    endpoint = ms._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    print("coordinator bound to", endpoint, flush=True)
    assert endpoint.startswith("tcp://127.0.0.1:"), endpoint

    stop = threading.Event()

    def route() -> None:
        try:
            coordinator.routing(stop_event=stop)
        finally:
            coordinator.close()

    coord_thread = threading.Thread(target=route, daemon=True)
    coord_thread.start()

    actor = Actor("dev", device_class=Device, host="127.0.0.1", port=port)
    actor.connect()
    actor.register_rpc_method(lambda x: x * 2, name="double")
    actor.register_device_method(actor.device.scale)
    actor_stop = threading.Event()
    actor_thread = threading.Thread(
        target=actor.listen, kwargs={"stop_event": actor_stop}, daemon=True
    )
    actor_thread.start()

    listener = Listener(name="lis", host="127.0.0.1", port=port)
    listener.start_listen()
    listener.register_rpc_method(lambda a, b: a + b, name="add")
    time.sleep(0.2)  # let the actor sign in

    try:
        with Director(
            actor="N1.dev", name="director", host="127.0.0.1", port=port, timeout=2
        ) as director:
            check("director.ask_rpc double", director.ask_rpc("double", x=21), 42)
            check("director.get_parameters", director.get_parameters(["value"]), {"value": 0})
            director.set_parameters({"value": 5})
            check("after set_parameters", director.get_parameters(["value"]), {"value": 5})
            check("call_action scale", director.call_action("scale", 3), 15)
            check("device.scale rpc", director.ask_rpc("device.scale", factor=2), 30)
            caps = director.get_rpc_capabilities()
            names = sorted(m["name"] for m in caps["methods"])
            print("actor rpc methods:", names, flush=True)
            check("short name routes", director.ask_rpc("double", actor="dev", x=1), 2)

        with Communicator(name="com", host="127.0.0.1", port=port, timeout=2) as com:
            check("communicator -> listener add", com.ask_rpc(receiver="N1.lis", method="add", a=1, b=2), 3)
            comps = com.ask_rpc(receiver="COORDINATOR", method="send_local_components")
            print("local components:", comps, flush=True)
            assert {"dev", "lis", "com"} <= set(comps), comps

        try:
            with Communicator(name="dev", host="127.0.0.1", port=port, timeout=2):
                pass
        except Exception as exc:  # the name is taken by the Actor
            print(f"duplicate sign-in refused: {exc.__class__.__name__}: {exc}", flush=True)
        else:
            raise SystemExit("duplicate name was accepted")

        lcom = listener.get_communicator()
        check("listener communicator -> actor", lcom.ask_rpc(receiver="N1.dev", method="double", x=4), 8)
    finally:
        listener.stop_listen()
        actor_stop.set()
        actor_thread.join(5)
        stop.set()
        coord_thread.join(5)
    check("threads stopped", (actor_thread.is_alive(), coord_thread.is_alive()), (False, False))
    print("pyleco smoke OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
