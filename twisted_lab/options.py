# -*- test-case-name: tests.test_config -*-
"""
Declarative option schemas for config sections.

Every device plugin and protocol plugin declares its options as a mapping of
name to L{Option}; L{validate} checks a TOML table against it: unknown keys
are errors, types are checked, defaults are filled in, and every error names
the file, the key and the reason.  The configuration reference in C{docs/}
is generated from the same schemas.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

from twisted_lab.errors import ConfigError

__all__ = ["Option", "REQUIRED", "validate"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an option that must be given.
REQUIRED: Any = _Required()

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "a table"}


@dataclass(frozen=True)
class Option:
    """
    One accepted key of a config table.

    @ivar type: the Python type of the value (C{int}, C{float}, C{str},
        C{bool}, C{list} or C{dict}); an C{int} is accepted for C{float}.
    @ivar default: its default, or L{REQUIRED}.
    @ivar doc: one line for the configuration reference.
    @ivar items: for a C{list} of tables or a C{dict} table, the schema of
        each table; for a C{list} of plain values, their type as C{Option}
        under the key C{"*"}.
    @ivar choices: the allowed values, or C{None}.
    @ivar free_keys: for a C{dict}, allow any keys (values checked against
        C{items["*"]} when given).
    """

    type: type
    default: Any = REQUIRED
    doc: str = ""
    items: Mapping[str, Option] | None = None
    choices: tuple[Any, ...] | None = None
    free_keys: bool = False

    @property
    def required(self) -> bool:
        """C{True} when the key must be given."""
        return self.default is REQUIRED


def _check_type(option: Option, value: Any, file: str | None, key: str) -> Any:
    kind = option.type
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"must be {_TYPE_NAMES.get(kind, kind.__name__)}, "
                          f"got {type(value).__name__} {value!r}", file, key)
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"must be one of {', '.join(map(repr, option.choices))}, got {value!r}",
                          file, key)
    if kind is list and option.items is not None:
        item_option = option.items.get("*")
        out = []
        for i, item in enumerate(value):
            where = f"{key}[{i}]"
            if item_option is not None:
                out.append(_check_type(item_option, item, file, where))
            else:
                if not isinstance(item, dict):
                    raise ConfigError(f"must be a table, got {type(item).__name__} {item!r}",
                                      file, where)
                out.append(validate(option.items, item, file, where))
        value = out
    elif kind is dict and option.items is not None:
        if option.free_keys:
            item_option = option.items.get("*")
            if item_option is not None:
                value = {k: _check_type(item_option, v, file, f"{key}.{k}")
                         for k, v in value.items()}
        else:
            value = validate(option.items, value, file, key)
    return value


def validate(schema: Mapping[str, Option], table: Mapping[str, Any], file: str | None = None,
             prefix: str = "") -> dict[str, Any]:
    """
    Check a config table against a schema and fill in defaults.

    @param schema: option name to L{Option}.
    @param table: the table read from the file.
    @param file: the file name, for error messages.
    @param prefix: the table's own key (C{"devices.stage"}), for messages.
    @return: a new dict with every option of the schema.
    @raise ConfigError: an unknown key, a wrong type, a missing required key.
    """
    def where(key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    out: dict[str, Any] = {}
    for key, value in table.items():
        option = schema.get(key)
        if option is None:
            known = ", ".join(sorted(schema)) or "none"
            from twisted_lab.discovery import did_you_mean

            raise ConfigError(f"unknown key; accepted keys are: {known}"
                              f"{did_you_mean(key, schema)}", file, where(key))
        out[key] = _check_type(option, value, file, where(key))
    for key, option in schema.items():
        if key not in out:
            if option.required:
                raise ConfigError("is required but missing", file, where(key))
            out[key] = copy.deepcopy(option.default)
    return out
