"""
Device implementations: simulated instruments, VISA instruments, and a
wrapper that turns any Python object into a device.
"""
