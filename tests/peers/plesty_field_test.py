"""
Run plesty-lib's own client-tier field test (``ClientFieldTest``, attached
mode) against a PLESTY server, inside a plesty venv; print each gate's
status and detail as one JSON object.  Its reports go to REPORTS_DIR.

Usage: python plesty_field_test.py ADDRESS PARAMS SAFE_OPS RESOURCES REPORTS_DIR
(PARAMS, SAFE_OPS and RESOURCES comma-separated)
"""
import importlib.metadata
import json
import sys

from plesty.lib.test.client_field_test import ClientFieldTest


def main(address, params, safe_ops, resources, reports):
    report = ClientFieldTest(address=address, params=params.split(","),
                             safe_ops=safe_ops.split(","), resources=resources.split(","),
                             label="twisted_lab", reports_dir=reports,
                             project_root=reports).run()
    gates = {}
    for gate in report.gates:
        gates[gate.name] = {"status": str(getattr(gate, "status", "")),
                            "error": str(getattr(gate, "error", "") or "")[:300]}
    return {"plesty-lib": importlib.metadata.version("plesty-lib"), "ok": bool(report.ok),
            "gates": gates}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
