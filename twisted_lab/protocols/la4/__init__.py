"""
The LightArray LA4 "pycom" protocol: one JSON document per TCP connection.

  - L{twisted_lab.protocols.la4.message}: typed messages, validation, JSON codec;
  - L{twisted_lab.protocols.la4.commands}: the allow-listed C{cmd} grammar;
  - L{twisted_lab.protocols.la4.transport}: one-shot receiver and sender;
  - L{twisted_lab.protocols.la4.imports}: the coordinator role (an LA4
    node as a registry device);
  - L{twisted_lab.protocols.la4.node}: a simulated node that never runs a shell.
"""
