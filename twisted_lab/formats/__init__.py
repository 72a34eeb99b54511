"""
Socket-free formats shared by several protocols: the one home of each peer's
data objects and settings trees (no I/O, no reactor).
"""
