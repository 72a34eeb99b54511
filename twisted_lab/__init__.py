"""
twisted_lab: one Twisted process that serves laboratory instruments over
PyMoDAQ's TCP/IP protocol, LECO, PLESTY and the LA4 "pycom" protocol, all
sharing one device registry.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
