"""
A third-party plugin module, written into a temporary C{twisted_lab/plugins}
folder by the tests to prove that outside packages are discovered.
"""

SOURCE = '''
from twisted.application.service import Service
from twisted.plugin import IPlugin
from zope.interface import implementer

from twisted_lab.devices.base import BaseDevice
from twisted_lab.description import Parameter
from twisted_lab.interfaces import IDevicePlugin, IProtocolPlugin
from twisted_lab.options import Option


class Thermometer(BaseDevice):
    def __init__(self, name, options):
        super().__init__(name, [Parameter("temperature", "float", "K", readonly=True,
                                          default=options["kelvin"])])


@implementer(IPlugin, IDevicePlugin)
class ThermometerPlugin:
    type_name = "acme.thermometer"
    description = "An ACME thermometer."
    options = {"kelvin": Option(float, 293.0, "The temperature it reads.")}

    def make_device(self, name, options, reactor):
        return Thermometer(name, options)


class AcmeService(Service):
    def __init__(self, registry, section):
        self.registry, self.section = registry, section


@implementer(IPlugin, IProtocolPlugin)
class AcmeProtocolPlugin:
    name = "acme"
    description = "The ACME protocol."
    options = {"port": Option(int, 7000, "Its port.")}

    def default_section(self, device_names):
        return {}

    def make_service(self, registry, section, reactor):
        return AcmeService(registry, section)


class Heater(BaseDevice, Service):
    """A device that owns a timer: it is also a service, started with the lab."""

    def startService(self):
        Service.startService(self)

    def stopService(self):
        return Service.stopService(self)


@implementer(IPlugin, IDevicePlugin)
class HeaterPlugin:
    type_name = "acme.heater"
    description = "An ACME heater (a device that is also a service)."
    options = {}

    def make_device(self, name, options, reactor):
        return Heater(name)


thermometer = ThermometerPlugin()
heater = HeaterPlugin()
acme = AcmeProtocolPlugin()
'''


def install(base: str) -> str:
    """
    Write the plugin under C{base/twisted_lab/plugins/} (no C{__init__.py},
    as a third-party distribution would install it).

    @return: the plugin folder.
    """
    import os

    folder = os.path.join(base, "twisted_lab", "plugins")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "acme_lab.py"), "w") as f:
        f.write(SOURCE)
    return folder
