"""
Run inside the plesty venv (Python 3.12): connect plesty-lib's own
build_client to a PLESTY server and run a list of operations, printing one
JSON list of results ({"ok": value} or {"error": "Type: message"}).

Usage: python plesty_ops.py ADDRESS CLIENT_ID RESOURCES_JSON OPS_JSON

Each op is {"op": "query", "name": N} | {"op": "write", "name": N, "value": V}
| {"op": "call", "name": F, "args": [...], "kwargs": {...}} | {"op": "describe"}
| {"op": "hold"}: print {"held": true} and wait for a line on stdin (the
client stays connected, holding its resources, meanwhile).
"""
import json
import sys

from plesty.lib.service import build_client


def run(client, op):
    kind = op["op"]
    if kind == "query":
        return client.query(op["name"])
    if kind == "write":
        return client.write(op["name"], op["value"])
    if kind == "call":
        return client.call(op["name"], *op.get("args", []), **op.get("kwargs", {}))
    if kind == "hold":
        print(json.dumps({"held": True}), flush=True)
        sys.stdin.readline()
        return None
    if kind == "describe":
        described = client.describe()
        return {"methods": described["methods"],
                "parameters": described["doc"]["parameters"]["default"]}
    raise ValueError(f"unknown op {kind!r}")


def main(address, client_id, resources, ops):
    client = build_client(address, timeout=10000, client_id=client_id,
                          resources=json.loads(resources))
    out = []
    for op in json.loads(ops):
        try:
            out.append({"ok": run(client, op)})
        except Exception as e:  # what the client raises is what we record
            out.append({"error": f"{type(e).__name__}: {e}"})
    client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5]), default=repr))
