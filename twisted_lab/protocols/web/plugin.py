# -*- test-case-name: tests.test_web_plugin -*-
"""
The C{[web]} config section: the live console and the HTTP API.

    [web]
    listen = "tcp:8765:interface=127.0.0.1"
    read_only = false
    token_file = ""            # a file holding the write token (empty: no token)
    max_fps = 30.0
    max_frame_side = 1024
    max_body = 1048576
    log_size = 1000

Absent from a config file means no console; the simulated lab runs it on
127.0.0.1:8765.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from twisted.internet.endpoints import serverFromString

from twisted_lab.access import ACCESS_OPTIONS, policy_from
from twisted_lab.errors import ConfigError
from twisted_lab.options import Option
from twisted_lab.protocols.base import ProtocolPlugin, require_positive
from twisted_lab.registry import DeviceRegistry
from twisted_lab.startup import guard

if TYPE_CHECKING:
    from twisted_lab.protocols.web.service import WebService

__all__ = ["WebPlugin", "plugin", "DEFAULT_LISTEN", "read_token"]

#: The simulated lab's console.
DEFAULT_LISTEN = "tcp:8765:interface=127.0.0.1"


def read_token(path: str) -> str | None:
    """
    The write token from C{token_file} (first line, stripped), or C{None}
    when no file is configured.

    @raise ConfigError: the file cannot be read or holds no token.
    """
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            token = f.readline(4096).strip()
    except OSError as e:
        raise ConfigError(f"cannot read the token file {path!r}: {e.strerror}",
                          key="web.token_file") from None
    if len(token) < 8:
        raise ConfigError(f"the token file {path!r} must hold a token of at least 8 characters",
                          key="web.token_file")
    return token


class WebPlugin(ProtocolPlugin):
    """The console and HTTP API on twisted.web and autobahn."""

    name = "web"
    description = "Web console and HTTP API: live views, JSON + .npy, WebSocket updates"
    options = {
        "listen": Option(str, DEFAULT_LISTEN, "server endpoint string of the console and API "
                         "(a bare tcp:PORT listens on every interface)"),
        "allow": ACCESS_OPTIONS["allow"],
        "read_only": Option(bool, False, "refuse every write (set, mutating actions, leases)"),
        "token_file": Option(str, "", "a file whose first line is the token writes need "
                             "(Authorization: Bearer); empty for no token"),
        "max_fps": Option(float, 30.0, "the highest frame rate sent to one browser per device"),
        "max_frame_side": Option(int, 1024, "images are reduced (every k-th pixel) so no side "
                                 "is longer, for drawing; .npy downloads are full size"),
        "max_body": Option(int, 1024 * 1024, "the largest request body accepted, in bytes"),
        "idle_timeout": Option(float, 60.0, "seconds an HTTP connection may stay idle between "
                               "requests before it is closed (WebSockets are not cut: they "
                               "are pinged)"),
        "header_timeout": Option(float, 10.0, "seconds a request may take, from its first "
                                 "byte, to send its request line and headers; a slower "
                                 "client is cut (slow-header attacks)"),
        "position_interval": Option(float, 0.1, "seconds between position updates of a "
                                    "watched actuator"),
        "log_size": Option(int, 1000, "log events kept for the log view"),
    }

    def default_section(self, device_names: list[str]) -> dict[str, Any]:
        """The console on 127.0.0.1:8765."""
        return {"listen": DEFAULT_LISTEN}

    def check(self, section: Mapping[str, Any]) -> None:
        """Rates and sizes must be positive."""
        require_positive(section, "web", "max_fps", "position_interval", "idle_timeout",
                         "header_timeout")
        require_positive(section, "web", "max_frame_side", "max_body", "log_size", minimum=1,
                         strict=False)

    def build(self, registry: DeviceRegistry, section: Mapping[str, Any],
              reactor: Any) -> WebService:
        """The web service."""
        from twisted_lab.protocols.web.context import WebContext
        from twisted_lab.protocols.web.logbuffer import LogRing
        from twisted_lab.protocols.web.service import WebService

        try:
            serverFromString(reactor, section["listen"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"not a server endpoint string: {e}", key="web.listen") from None
        context = WebContext(registry, reactor, read_only=section["read_only"],
                             token=read_token(section["token_file"]),
                             max_body=section["max_body"], max_fps=section["max_fps"],
                             idle_timeout=section["idle_timeout"],
                             header_timeout=section["header_timeout"],
                             max_frame_side=section["max_frame_side"],
                             position_interval=section["position_interval"],
                             log_ring=LogRing(section["log_size"]))
        return guard(WebService(context, section["listen"], policy_from(section, "web")),
                     "web.listen", section["listen"])


plugin = WebPlugin()
