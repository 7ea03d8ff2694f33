"""Typed config machinery shared by every command: dataclass defaults, a YAML file over them, `--set a.b=v` last.

Every key is a dataclass field, so a typo or a wrong type is a clear error before any work starts.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from l2i_pipeline.core.errors import ConfigError

T = TypeVar("T")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or say which key is wrong."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key!r}: expected {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def apply_dict(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if k not in names:
            raise ConfigError(f"unknown config key {key!r}; known: {sorted(names)}")
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise ConfigError(f"config key {key!r} is a section; give {key}.<field>=value")
            apply_dict(cur, v, key + ".")
        else:
            setattr(obj, k, _coerce(v, hints[k], key))


def _parse_set(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw  # not YAML: the string itself (the key's type check still applies)
    return key.strip().split("."), value


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file, or a one-line ConfigError (missing, not text, not YAML, repeated key)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_StrictLoader) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not text (binary data); expected YAML") from None
    except ConfigError as e:
        raise ConfigError(f"config file {p}, {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"config file {p} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping (key: value lines), not {type(data).__name__}")
    return data


def with_defaults(defaults: list[str], sets: list[str]) -> list[str]:
    """A caller's own `--set` defaults, less the keys the user sets, then the user's: no key twice."""
    given = {item.split("=", 1)[0].strip() for item in sets}
    return [d for d in defaults if d.split("=", 1)[0].strip() not in given] + list(sets)


def load_typed(cfg: T, path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Fill a config dataclass instance: the YAML file over its defaults, then `--set` overrides (each key
    at most once)."""
    if path:
        apply_dict(cfg, read_yaml(path))
    given: dict[str, str] = {}
    for item in overrides or []:
        parts, value = _parse_set(item)
        key = ".".join(p.strip() for p in parts)
        if key in given:  # as a key repeated in a YAML file: which one was meant is not ours to guess
            raise ConfigError(f"--set {key} given twice ({given[key]!r}, then {item!r}); give each key once")
        given[key] = item
        nested: dict[str, Any] = {parts[-1]: value}
        for part in reversed(parts[:-1]):
            nested = {part: nested}
        apply_dict(cfg, nested)
    return cfg
