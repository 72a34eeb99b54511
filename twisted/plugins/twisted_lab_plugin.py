"""
The twistd dropin of twisted_lab: C{twistd -n lab}.  Kept lazy on purpose:
if this module failed to import, the plugin would silently disappear.
"""
from twisted.application.service import ServiceMaker

lab = ServiceMaker("twisted_lab", "twisted_lab.tap",
                   "Laboratory instrument protocol servers (PyMoDAQ, LECO, PLESTY, LA4).", "lab")
