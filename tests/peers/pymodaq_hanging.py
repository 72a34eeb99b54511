"""
Imported by the lab when it runs in the labpymodaq venv: PyMoDAQ's
DAQ_Move_Mock with a move that blocks (targets above 100, until the file
named by C{TWISTED_LAB_TEST_GATE} exists) and one that raises (targets
below -100), for the containment tests.
"""
import os
import time

from pymodaq_plugins_mock.daq_move_plugins.daq_move_Mock import DAQ_Move_Mock


class DAQ_Move_Hanging(DAQ_Move_Mock):
    """DAQ_Move_Mock whose driver hangs or raises on far targets."""

    def move_abs(self, position):
        target = float(position.value())
        if target > 100:
            gate = os.environ.get("TWISTED_LAB_TEST_GATE", "")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (gate and os.path.exists(gate)):
                time.sleep(0.02)
        elif target < -100:
            raise RuntimeError("the driver broke")
        return super().move_abs(position)
