"""
The name issue 3 gives the PyMoDAQ TCP/IP benchmark: runs C{bench/pymodaq.py}.

    python bench/pymodaq_tcp.py [options of bench/pymodaq.py]
"""
import os
import runpy

if __name__ == "__main__":
    runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pymodaq.py"),
                   run_name="__main__")
