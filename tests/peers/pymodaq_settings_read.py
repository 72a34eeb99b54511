"""
Read settings trees with PyMoDAQ's own code (run in the pymodaq4 or the
pymodaq5 peer venv): each argument is a settings tree as parameter XML; it
is loaded as PyMoDAQ loads one it receives (C{ioxml.XML_string_to_parameter},
then C{Parameter.create}) and each leaf is printed as one JSON line: name,
type, value (its repr), readonly and limits as PyMoDAQ holds them.
"""
import json
import sys

try:
    from pymodaq_gui.parameter import Parameter, ioxml  # PyMoDAQ 5
except ImportError:
    from pymodaq.utils.parameter import Parameter, ioxml  # PyMoDAQ 4

for xml in sys.argv[1:]:
    children = ioxml.XML_string_to_parameter(xml)
    tree = Parameter.create(name="root", type="group", children=children)
    for leaf in tree.children():
        limits = leaf.opts.get("limits")
        print(json.dumps({"name": leaf.name(), "type": leaf.type(), "value": repr(leaf.value()),
                          "readonly": bool(leaf.opts.get("readonly")),
                          "limits": None if limits is None else repr(list(limits))}),
              flush=True)
