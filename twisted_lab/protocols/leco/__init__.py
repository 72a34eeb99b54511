"""
LECO (Laboratory Experiment COntrol) over ZeroMQ: messages, JSON-RPC, a
Component, actors exporting registry devices, directors importing remote
actors, a Coordinator with federation, and the data protocol.

Interoperates with pyleco 0.6.0.post1 and PyMoDAQ 5; see C{docs/leco.md}.
"""
