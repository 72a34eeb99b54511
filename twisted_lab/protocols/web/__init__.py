"""
The web console and HTTP API (the C{[web]} section): a one-page console,
JSON over HTTP with C{.npy} downloads, and live updates over a WebSocket
(autobahn), all around the same device registry as every other protocol.
"""
