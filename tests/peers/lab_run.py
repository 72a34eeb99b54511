"""
Run C{twistd -n lab ARGS...} in a peer venv (lab312 on Python 3.12,
labpymodaq) for the tests, from the checkout (PYTHONPATH = the repo root).

plesty-lib's C{get_local_ip()} does a UDP connect towards a public
address to name its devices; only loopback is ever a target in tests, so
it is replaced by C{127.0.0.1} before any PLESTY package is imported.
"""
import sys

try:
    import plesty.lib.device.base_device_sync as _base
    import plesty.lib.utils.registry as _registry
except ImportError:
    pass
else:
    _registry.get_local_ip = _base.get_local_ip = lambda: "127.0.0.1"

from twisted.scripts.twistd import run

sys.argv = ["twistd", *sys.argv[1:]]
run()
