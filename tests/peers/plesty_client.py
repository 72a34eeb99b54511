"""
Run inside the plesty venv (Python 3.12): drive a PLESTY server with
plesty-lib's own build_client and print what happened as one JSON object.

Usage: python plesty_client.py ADDRESS PARAM WRITE_VALUE FUNC
"""
import json
import sys

from plesty.lib.service import build_client


def attempt(function):
    try:
        return {"ok": function()}
    except Exception as e:  # what the client raises is what we record
        return {"error": f"{type(e).__name__}: {e}"}


def main(address: str, param: str, value: str, func: str) -> dict:
    out = {}
    a = build_client(address, timeout=5000, client_id="client-A", resources=[param],
                     connect_kwargs={"experiment": "run-42"})
    out["connect"] = a.connection_info
    described = a.describe()
    out["methods"] = described["methods"]
    out["doc_parameters"] = [p["name"] for p in described["doc"]["parameters"]["default"]]
    out["query"] = a.query(param)
    out["write"] = a.write(param, float(value))
    out["query_after"] = a.query(param, timeout=2.0)
    out["identity"] = a.identity()
    out["config_list"] = a.call("get_config_list")
    out["func"] = attempt(lambda: getattr(a, func)(samples=4))
    out["unknown_param"] = attempt(lambda: a.query("nope"))
    out["private"] = attempt(lambda: a.call("__class__"))
    out["unadvertised"] = attempt(lambda: a.call("subscribe"))
    out["refused"] = attempt(lambda: build_client(address, timeout=5000, client_id="client-B",
                                                  resources=[param]))
    a.close()
    b = build_client(address, timeout=5000, client_id="client-B", resources=[param])
    out["granted_after_release"] = b.connection_info
    b.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
