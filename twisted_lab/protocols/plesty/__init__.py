"""
PLESTY device servers over ZeroMQ (ROUTER server, DEALER client), speaking
the JSON request/reply protocol of plesty-lib 0.6.
"""
