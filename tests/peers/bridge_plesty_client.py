"""
Run inside the plesty venv (Python 3.12): plesty-lib's own C{build_client}
performs a list of operations on a PLESTY server and prints the outcome of
each as one JSON line (peer side of tests/test_bridge_e2e.py).

Usage: python bridge_plesty_client.py ADDRESS OPS_JSON

OPS_JSON is a list of C{["query", param]}, C{["write", param, value]},
C{["call", method, {kwargs}]}; the output is a list of C{{"ok": result}} or
C{{"error": "<ExceptionType>: <message>"}}, one per operation.
"""
import json
import sys

from plesty.lib.service import build_client


def main(address: str, ops: list) -> list:
    out = []
    client = build_client(address, timeout=5000, client_id="bridge-peer")
    try:
        for op in ops:
            try:
                if op[0] == "query":
                    result = client.query(op[1])
                elif op[0] == "write":
                    result = client.write(op[1], op[2])
                elif op[0] == "call":
                    result = client.call(op[1], **(op[2] if len(op) > 2 else {}))
                else:
                    raise ValueError(f"unknown op {op[0]}")
                out.append({"ok": result})
            except Exception as e:  # what the client raises is what we record
                out.append({"error": f"{type(e).__name__}: {e}"})
    finally:
        client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2])), default=repr))
