LightArray LA4 pycom protocol: coordinator role with callback listener and heartbeats (the node as a registry device), and a safe simulated node with an allow-listed command grammar.
