"""
The built-in protocols and device types, registered like any third-party
plugin.  Every object here is lazy: nothing heavy is imported until a config
names it.
"""
from twisted_lab.discovery import LazyDevicePlugin, LazyProtocolPlugin

pymodaq = LazyProtocolPlugin("pymodaq", "twisted_lab.protocols.pymodaq.plugin",
                             "PyMoDAQ 4.x TCP/IP protocol (server and client roles).")
leco = LazyProtocolPlugin("leco", "twisted_lab.protocols.leco.plugin",
                          "LECO over ZeroMQ: Coordinator, actors, directors (pyleco, PyMoDAQ 5).")
plesty = LazyProtocolPlugin("plesty", "twisted_lab.protocols.plesty.plugin",
                            "PLESTY device servers over ZeroMQ (server and client).")
la4 = LazyProtocolPlugin("la4", "twisted_lab.protocols.la4.plugin",
                         "LightArray LA4 pycom JSON protocol (coordinator and simulated node).")
web = LazyProtocolPlugin("web", "twisted_lab.protocols.web.plugin",
                         "Web console and HTTP API (twisted.web, autobahn WebSocket).")

sim_stage = LazyDevicePlugin("sim.stage", "twisted_lab.devices.plugins")
sim_powermeter = LazyDevicePlugin("sim.powermeter", "twisted_lab.devices.plugins")
sim_spectrometer = LazyDevicePlugin("sim.spectrometer", "twisted_lab.devices.plugins")
sim_camera = LazyDevicePlugin("sim.camera", "twisted_lab.devices.plugins")
sim_la4 = LazyDevicePlugin("sim.la4", "twisted_lab.devices.plugins")
visa = LazyDevicePlugin("visa", "twisted_lab.devices.plugins")
python = LazyDevicePlugin("python", "twisted_lab.devices.plugins")
adapter_actuator = LazyDevicePlugin("adapter.actuator", "twisted_lab.devices.plugins")
adapter_detector = LazyDevicePlugin("adapter.detector", "twisted_lab.devices.plugins")
pymeasure = LazyDevicePlugin("pymeasure", "twisted_lab.devices.plugins")
plesty_device = LazyDevicePlugin("plesty", "twisted_lab.devices.plugins")
pymodaq_plugin = LazyDevicePlugin("pymodaq.plugin", "twisted_lab.devices.plugins")
