"""
PyMoDAQ 4.x TCP/IP: the codec, the incremental parser, the client role
(export registry devices to a PyMoDAQ main computer) and the server role
(import connecting PyMoDAQ instruments as devices).  See C{docs/pymodaq.md}.
"""
