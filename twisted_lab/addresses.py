# -*- test-case-name: tests.test_addresses -*-
"""
Parsing the addresses a config names, before anything binds.

  - Twisted endpoint strings (C{"tcp:6341:interface=127.0.0.1"}) are checked
    by Twisted's own parsers, L{serverFromString} and L{clientFromString};
  - ZeroMQ addresses (C{"tcp://127.0.0.1:5555"}) by L{parse_zmq_address},
    which follows libzmq's rules (a test holds it to libzmq's own verdict).

Nothing here opens a socket.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.endpoints import clientFromString, serverFromString

__all__ = ["Address", "parse_server_endpoint", "check_client_endpoint", "parse_zmq_address",
           "WILDCARD_HOSTS"]

#: Hosts that mean "every interface".
WILDCARD_HOSTS = frozenset({"", "*", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True)
class Address:
    """
    Where a listener binds.

    @ivar text: the address as configured.
    @ivar host: the interface (C{""} or C{"*"}: every interface).
    @ivar port: the TCP port (C{0}: any free port), or C{None} when the
        address is not a TCP port (a UNIX socket, C{ipc://}, C{inproc://}).
    """

    text: str
    host: str
    port: int | None

    def overlaps(self, other: Address) -> bool:
        """C{True} when both would bind the same TCP port on a common interface."""
        if self.port is None or other.port is None or self.port == 0 or self.port != other.port:
            return False
        if self.host in WILDCARD_HOSTS or other.host in WILDCARD_HOSTS:
            return True
        return _norm(self.host) == _norm(other.host)

    def __str__(self) -> str:
        if self.port is None:
            return self.text
        host = self.host if self.host not in ("", "*") else "*"
        return f"{host}:{self.port}"


def _norm(host: str) -> str:
    host = host.strip("[]").lower()
    return "127.0.0.1" if host == "localhost" else host


class _NoReactor:
    """Endpoint parsers only store the reactor; nothing may call it."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("the config check never touches a reactor")


def _fields(description: str) -> tuple[list[str], dict[str, str]]:
    """Split an endpoint string as Twisted does (C{:} separates, C{\\} escapes)."""
    parts, current, escaped = [], "", False
    for char in description:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    args, kwargs = [], {}
    for part in parts:
        name, eq, value = part.partition("=")
        if eq:
            kwargs[name] = value
        else:
            args.append(part)
    return args, kwargs


def parse_server_endpoint(description: str, bare_port_host: str | None = None) -> Address:
    """
    Check a server endpoint string with Twisted's parser and say where it binds.

    @param bare_port_host: when set, a bare port (C{"5000"}) is accepted and
        means that host (the C{[la4] callback} convention).
    @raise ValueError: Twisted refuses it (the message says why).
    """
    if bare_port_host is not None and description.isdigit():
        return Address(description, bare_port_host, int(description))
    try:
        serverFromString(_NoReactor(), description)
    except ValueError as e:
        raise ValueError(_endpoint_reason(description, e)) from None
    except (TypeError, KeyError) as e:
        raise ValueError(f"not a valid endpoint: {e}") from None
    args, kwargs = _fields(description)
    kind = args[0].lower() if args else ""
    if kind in ("tcp", "tcp6", "ssl"):
        port_text = kwargs.get("port", args[1] if len(args) > 1 else "")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"the port must be a number, got {port_text!r}") from None
        host = kwargs.get("interface", "")
        return Address(description, host, port)
    return Address(description, "", None)


def _endpoint_reason(description: str, error: ValueError) -> str:
    text = str(error)
    if description.isdigit():
        return (f"not an endpoint: a bare port is not enough; did you mean "
                f"\"tcp:{description}:interface=127.0.0.1\"?")
    if description.startswith("tcp://"):
        hostport = description[len("tcp://"):]
        host, _, port = hostport.rpartition(":")
        return (f"not an endpoint ({text}); this is a ZeroMQ address, did you mean "
                f"\"tcp:{port}:interface={host}\"?")
    return f"not an endpoint: {text}"


def check_client_endpoint(description: str) -> None:
    """
    Check a client endpoint string (C{"tcp:host=...:port=..."}) with
    Twisted's parser.

    @raise ValueError: Twisted refuses it.
    """
    try:
        clientFromString(_NoReactor(), description)
    except ValueError as e:
        raise ValueError(f"not a client endpoint: {e}; expected e.g. "
                         f"\"tcp:host=127.0.0.1:port=6341\"") from None
    except (TypeError, KeyError) as e:
        raise ValueError(f"not a client endpoint: {e}") from None


_TRANSPORTS = ("tcp", "ipc", "inproc")


def parse_zmq_address(address: str, bind: bool = True) -> Address:
    """
    Check a ZeroMQ address by libzmq's rules and say where it binds.

    C{tcp://HOST:PORT} (HOST an IP address, C{[IPv6]}, a name, or C{*} when
    binding; PORT 0-65535, or C{*} when binding), C{ipc://PATH},
    C{inproc://NAME}.

    @param bind: C{True} for an address to bind, C{False} to connect to.
    @raise ValueError: why it is not one.
    """
    transport, sep, rest = address.partition("://")
    if not sep:
        hint = ""
        if ":" in address and address.rsplit(":", 1)[1].isdigit():
            hint = f"; did you mean \"tcp://{address}\"?"
        elif address.isdigit():
            hint = f"; did you mean \"tcp://127.0.0.1:{address}\"?"
        raise ValueError("not a ZeroMQ address (expected tcp://HOST:PORT, ipc://PATH or "
                         f"inproc://NAME){hint}")
    if transport not in _TRANSPORTS:
        raise ValueError(f"unsupported ZeroMQ transport {transport!r} (use tcp, ipc or inproc)")
    if not rest:
        raise ValueError(f"nothing after {transport}://")
    if transport != "tcp":
        return Address(address, "", None)
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host:
        raise ValueError("a tcp:// address needs HOST:PORT, e.g. tcp://127.0.0.1:5555")
    if port_text == "*" and bind:
        port = 0
    elif port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ValueError(f"the port must be 0-65535{' or *' if bind else ''}, got {port_text!r}")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"unbalanced brackets in host {host!r}")
    if host == "*" and not bind:
        raise ValueError("cannot connect to * (name a host)")
    if not bind and port == 0:
        raise ValueError("cannot connect to port 0")
    if any(c.isspace() for c in host):
        raise ValueError(f"spaces in host {host!r}")
    return Address(address, host, port)
