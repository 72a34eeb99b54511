"""
Run inside a plesty venv (Python 3.12; plesty-lib 0.5.x or 0.6.x): drive two
PLESTY servers with plesty-lib's own build_client, whose default receive
timeout is set short, and call the same slow operation on each; print what
happened as one JSON object.

The first server publishes a budget for the operation in C{describe}, the
second does not: plesty-lib's client waits for the first and gives up on the
second.

Usage: python plesty_budget_client.py BUDGETED_ADDRESS UNBUDGETED_ADDRESS FUNC TIMEOUT_MS
"""
import importlib.metadata
import json
import sys
import time

from plesty.lib.service import build_client


def attempt(function):
    start = time.monotonic()
    try:
        out = {"ok": function()}
    except Exception as e:  # what the client raises is what we record
        out = {"error": f"{type(e).__name__}: {e}"}
    out["seconds"] = round(time.monotonic() - start, 3)
    return out


def main(budgeted: str, unbudgeted: str, func: str, timeout_ms: str) -> dict:
    out = {"plesty-lib": importlib.metadata.version("plesty-lib")}
    a = build_client(budgeted, timeout=int(timeout_ms))
    described = a.describe()
    out["budgets"] = described.get("budgets")
    out["budgeted"] = attempt(lambda: getattr(a, func)())
    out["budgeted_by_name"] = attempt(lambda: a.call(func))
    a.close()
    b = build_client(unbudgeted, timeout=int(timeout_ms))
    out["unbudgeted_budgets"] = b.describe().get("budgets")
    out["unbudgeted"] = attempt(lambda: getattr(b, func)())
    b.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
