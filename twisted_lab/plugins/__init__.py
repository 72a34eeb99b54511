"""
Dropins for twisted_lab: modules here (and in any C{twisted_lab/plugins}
folder on C{sys.path}) provide L{twisted_lab.interfaces.IProtocolPlugin} and
L{twisted_lab.interfaces.IDevicePlugin} objects, found with
L{twisted.plugin.getPlugins}.
"""
from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
