"""
Imported by the lab when it runs in the lab312 venv (Python 3.12): the
plesty-thorlabs-powermeter driver in mock mode, with two misbehaving
operations for the containment tests.  The file named by the environment
variable C{TWISTED_LAB_TEST_GATE} releases a hanging call when it exists.
"""
import os
import time

from plesty.lib.device.device_utils import expose_to_api
from plesty.thorlabs_powermeter import Device as PowerMeter


class Device(PowerMeter):
    """A PM400 in mock mode whose hang() blocks and explode() raises."""

    @expose_to_api(kind="acquire", budget_s=0.5)
    def hang(self, seconds: float = 30.0) -> str:
        """Block until the gate file exists (or C{seconds} pass)."""
        gate = os.environ.get("TWISTED_LAB_TEST_GATE", "")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (gate and os.path.exists(gate)):
            time.sleep(0.02)
        return "returned"

    @expose_to_api
    def explode(self) -> None:
        """Raise."""
        raise RuntimeError("the driver broke")
