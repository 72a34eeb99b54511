"""
Peer-side driver for the LECO interop tests; runs inside the pyleco venv.

    python pyleco_driver.py client PORT NAME [TIMEOUT [SERVER_KEY_FILE]]
        With SERVER_KEY_FILE (a zmq.auth public key file), pyleco's
        Communicator talks CURVE (pyleco has no CURVE option: its socket is
        made CURVE before it connects, with a fresh client key pair).  The
        first line is {"ok": full name} or, when sign-in fails, {"error": ...}.
        One JSON command per stdin line, one JSON answer per stdout line
        (``{"ok": result}`` or ``{"error": {"type", "message", "rpc"}}``):
          {"op": "ask", "receiver": R, "method": M, "params": {...}, "binary": [hex...]}
              pyleco Communicator.ask_rpc (binary: additional payload; the
              answer is then {"ok": [result, [hex...]]})
          {"op": "director", "actor": A, "call": "get_parameters"|"set_parameters"|
              "call_action"|"get_rpc_capabilities", "args": [...], "kwargs": {...}}
              pyleco Director methods
          {"op": "sign_out"} / {"op": "sign_in"}
    python pyleco_driver.py actor PORT NAME
        A pyleco Actor NAME (device with value=0, a list, scale(factor), fail())
        plus RPC methods add(a, b) and blob(note) (binary in and out).
        Prints READY, serves until stdin closes.
    python pyleco_driver.py subscriber PORT DATAPORT NAME TOPIC [COUNT]
        A pyleco ExtendedMessageHandler subscribed to TOPIC on the data
        proxy's XPUB port; prints each DataMessage as a JSON line
        {"topic", "type", "cid", "payload": [hex...], "data"} and exits after COUNT.

Everything connects to 127.0.0.1 only.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
import time


def _error(exc: BaseException) -> dict:
    rpc = getattr(exc, "rpc_error", None)
    if rpc is not None:
        rpc = {"code": rpc.code, "message": rpc.message, "data": getattr(rpc, "data", None)}
    return {"type": type(exc).__name__, "message": str(exc), "rpc": rpc}


def _communicator(port: int, name: str, timeout: float, server_key: str = "") -> object:
    from pyleco.utils.communicator import Communicator

    if not server_key:
        return Communicator(name=name, host="127.0.0.1", port=port, timeout=timeout)
    import zmq
    import zmq.auth

    server_public, _ = zmq.auth.load_certificate(server_key)

    class CurveCommunicator(Communicator):
        """pyleco's Communicator on a CURVE DEALER."""

        def open(self, context=None) -> None:
            context = context or zmq.Context.instance()
            self.socket = context.socket(zmq.DEALER)
            public, secret = zmq.curve_keypair()
            self.socket.curve_serverkey = server_public
            self.socket.curve_publickey = public
            self.socket.curve_secretkey = secret
            self.socket.connect(f"tcp://{self.host}:{self.port}")

    return CurveCommunicator(name=name, host="127.0.0.1", port=port, timeout=timeout)


def client(port: int, name: str, timeout: float = 2.0, server_key: str = "") -> None:
    from pyleco.directors.director import Director

    com = _communicator(port, name, timeout, server_key)
    try:
        com.sign_in()
    except Exception as exc:  # refused (no CURVE, not allowed): tell the test
        print(json.dumps({"error": _error(exc)}), flush=True)
        com.close()
        return
    print(json.dumps({"ok": com.full_name}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "ask":
                binary = [bytes.fromhex(b) for b in cmd.get("binary", [])]
                kwargs = cmd.get("params") or {}
                if cmd.get("binary") is not None:
                    result, frames = com.ask_rpc(cmd["receiver"], cmd["method"],
                                                 additional_payload=binary,
                                                 extract_additional_payload=True, **kwargs)
                    result = [result, [f.hex() for f in frames]]
                else:
                    result = com.ask_rpc(cmd["receiver"], cmd["method"], **kwargs)
            elif op == "director":
                director = Director(actor=cmd["actor"], communicator=com)
                result = getattr(director, cmd["call"])(*cmd.get("args", []),
                                                       **cmd.get("kwargs", {}))
            elif op == "sign_out":
                result = com.sign_out()
            elif op == "sign_in":
                result = com.sign_in()
            elif op == "sleep":
                result = time.sleep(cmd["seconds"])
            else:
                raise ValueError(f"unknown op {op}")
            print(json.dumps({"ok": result}), flush=True)
        except Exception as exc:  # report everything to the test
            print(json.dumps({"error": _error(exc)}), flush=True)
    com.close()


def actor(port: int, name: str) -> None:
    from pyleco.actors.actor import Actor

    class Device:
        def __init__(self, *args, **kwargs) -> None:
            self.value = 0
            self.items = [1, 2, 3]
            self.label = "pyleco"

        def close(self) -> None:
            pass

        def scale(self, factor: float) -> float:
            self.value *= factor
            return self.value

        def fail(self) -> None:
            raise RuntimeError("device failure")

    act = Actor(name, device_class=Device, host="127.0.0.1", port=port)
    act.connect()
    act.register_rpc_method(lambda a, b: a + b, name="add")

    def blob(note: str = "", additional_payload=None):
        return {"got": [len(p) for p in additional_payload or []], "note": note}, [b"\xde\xad\xbe\xef"]

    act.register_binary_rpc_method(blob, accept_binary_input=True, return_binary_output=True)
    stop = threading.Event()
    thread = threading.Thread(target=act.listen, kwargs={"stop_event": stop}, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while act.namespace is None and time.time() < deadline:
        time.sleep(0.02)
    print("READY", act.full_name, flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    stop.set()
    thread.join(5)


def subscriber(port: int, data_port: int, name: str, topic: str, count: int = 1) -> None:
    from pyleco.core.data_message import DataMessage
    from pyleco.utils.extended_message_handler import ExtendedMessageHandler

    received = []
    done = threading.Event()

    class Handler(ExtendedMessageHandler):
        def handle_subscription_message(self, message: DataMessage) -> None:
            try:
                data = message.data
            except Exception:
                data = None
            print(json.dumps({"topic": message.topic.decode(), "type": message.message_type,
                              "cid": message.conversation_id.hex(),
                              "payload": [p.hex() for p in message.payload],
                              "data": data}), flush=True)
            received.append(message)
            if len(received) >= count:
                done.set()
                self.stop_event.set()

    handler = Handler(name, host="127.0.0.1", port=port, data_port=data_port)
    handler.subscribe_single(topic.encode())
    stop = threading.Event()
    handler.stop_event = stop
    thread = threading.Thread(target=handler.listen, kwargs={"stop_event": stop}, daemon=True)
    thread.start()
    time.sleep(0.3)
    print(json.dumps({"ready": True}), flush=True)
    done.wait(30)
    stop.set()
    thread.join(5)


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    mode = sys.argv[1]
    if mode == "client":
        client(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 2.0,
               sys.argv[5] if len(sys.argv) > 5 else "")
    elif mode == "actor":
        actor(int(sys.argv[2]), sys.argv[3])
    elif mode == "subscriber":
        subscriber(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5],
                   int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
