"""
The LA4 (LightArray4) board, socket-free: its sequence registers and rows
(L{registers}) and what a row does on the board (L{board}), shared by the
simulated board device (L{twisted_lab.devices.simulated}) and the simulated
pycom node (L{twisted_lab.protocols.la4.node}).
"""
