# -*- test-case-name: tests.test_protocol_plugin -*-
"""
The one shape of a protocol plugin (see C{docs/plugins.md}, "Writing a
protocol"): options declared once, on the class; the section validated once,
by L{twisted_lab.config} against those options, before the plugin sees it;
rules that span several options checked in L{ProtocolPlugin.check}; and one
top service, named after the section, built by L{ProtocolPlugin.build}.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

from twisted.application.service import IService, MultiService
from twisted.plugin import IPlugin
from zope.interface import implementer

from twisted_lab.errors import ConfigError
from twisted_lab.interfaces import IProtocolPlugin
from twisted_lab.options import Option

__all__ = ["ProtocolPlugin", "require_positive"]


@implementer(IPlugin, IProtocolPlugin)
class ProtocolPlugin:
    """
    A wire protocol serving the registry.  Subclasses set L{name},
    L{description} and L{options}, and define L{build} (and L{check} and
    L{default_section} when they need them).
    """

    #: The config section's name, also the top service's name.
    name: ClassVar[str] = ""
    #: One line for the configuration reference.
    description: ClassVar[str] = ""
    #: The section's options: name → L{Option}.
    options: ClassVar[Mapping[str, Option]] = {}

    def default_section(self, device_names: list[str]) -> dict[str, Any]:
        """The section of the simulated lab (none by default: the protocol is off)."""
        return {}

    def check(self, section: Mapping[str, Any]) -> None:
        """
        Check the rules the options alone cannot say (uniqueness, signs,
        endpoint strings).

        @param section: the validated section.
        @raise ConfigError: naming the key at fault.
        """

    def build(self, registry: Any, section: Mapping[str, Any], reactor: Any) -> IService:
        """
        The protocol's top service, holding everything it runs.

        @param registry: the L{twisted_lab.registry.DeviceRegistry}.
        @param section: the validated, checked section.
        @param reactor: the reactor every part uses.
        """
        raise NotImplementedError(f"{type(self).__name__}.build")

    def make_service(self, registry: Any, section: dict[str, Any], reactor: Any) -> IService:
        """Check the validated C{section}, build the top service, name it L{name}."""
        self.check(section)
        top = self.build(registry, section, reactor)
        top.setName(self.name)
        return top

    def multi_service(self) -> MultiService:
        """A plain top service, for protocols that run several services."""
        return MultiService()


def require_positive(section: Mapping[str, Any], prefix: str, *keys: str,
                     minimum: float = 0, strict: bool = True) -> None:
    """
    Refuse options below C{minimum} (or equal to it, when C{strict}).

    @raise ConfigError: naming C{prefix.key}.
    """
    for key in keys:
        value = section[key]
        if value < minimum or (strict and value == minimum):
            raise ConfigError("must be positive" if strict and minimum == 0
                              else f"must be at least {minimum}", key=f"{prefix}.{key}")
