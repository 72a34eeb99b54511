PLESTY device servers over ZeroMQ: ROUTER server per device answering DEALER and REQ clients, registry-lease resource locking, timeouts, and a client that imports PLESTY servers as devices.
