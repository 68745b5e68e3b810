"""LeRobot-style command-line configs: ``--config_path file.json`` plus dotted overrides.

Every command that takes a config parses it with :func:`parse_config`::

    cfg = parse_config(RewardTrainConfig, ["--config_path", "cfg.json", "--policy.hidden_dim=512"])

Values are decoded by draccus (a LeRobot dependency), so the JSON files LeRobot users already have
load unchanged. Before decoding, every key (from the file and from the command line) is checked
against the dataclass schema: an unknown key is a :class:`ConfigError` that names the key, where it
was found and the closest valid key, instead of draccus' generic decoding error.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any

import draccus
from draccus import cfgparsing

from configs import strict_json
from configs.errors import ConfigError


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap_optional(args[0])
    return tp


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _closest(name: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.0)
    return match[0] if match else ""


def _field_paths(cls: type, depth: int = 3) -> list[str]:
    """Every dotted option of ``cls`` (nested dataclasses up to ``depth`` levels)."""
    paths = []
    for name, tp in _field_types(cls).items():
        paths.append(name)
        tp = _unwrap_optional(tp)
        if depth and isinstance(tp, type) and dataclasses.is_dataclass(tp):
            paths += [f"{name}.{p}" for p in _field_paths(tp, depth - 1)]
    return paths


def _given_paths(key: str, value: Any) -> list[str]:
    """The dotted options a user wrote under ``key`` (``--env.task=x`` arrives as {'env': {'task': 'x'}})."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _given_paths(f"{key}.{k}", v)]
    return [key]


def _suggest(cls: type, key: str, value: Any) -> str:
    """The option the user meant: the same option without a section this command does not have
    (``hilserl record --env.task`` -> ``task``), the one of that name inside a section
    (``hilserl run --task`` -> ``env.task``), else the closest name."""
    paths = _field_paths(cls)
    for given in _given_paths(key, value):
        parts = given.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in paths:
                return ".".join(parts[i:])
        named = [p for p in paths if p.rsplit(".", 1)[-1] == parts[-1]]
        if named:
            return min(named, key=lambda p: (p.count("."), p))
    return _closest(key, list(_field_types(cls)))


def validate_keys(cls: type, data: Any, where: str, prefix: str = "") -> None:
    """Raise ConfigError for the first key in ``data`` that ``cls`` has no field for."""
    cls = _unwrap_optional(cls)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or not isinstance(data, dict):
        # Dicts of dataclasses (e.g. input_features) are checked entry by entry.
        origin = typing.get_origin(cls)
        if origin in (dict, typing.Dict) and isinstance(data, dict):  # noqa: UP006
            value_type = typing.get_args(cls)[1] if typing.get_args(cls) else Any
            for key, value in data.items():
                validate_keys(value_type, value, where, f"{prefix}{key}.")
        return
    fields = _field_types(cls)
    for key, value in data.items():
        if key not in fields:
            full = f"{prefix}{_given_paths(key, value)[0]}"
            suggestion = _suggest(cls, key, value)
            hint = f"; did you mean '{prefix}{suggestion}'?" if suggestion else ""
            raise ConfigError(f"unknown config key '{full}' in {where}{hint}")
        validate_keys(fields[key], value, where, f"{prefix}{key}.")


def _split_overrides(argv: list[str]) -> tuple[str | None, dict[str, str]]:
    config_path: str | None = None
    overrides: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(
                f"unexpected argument '{arg}': options look like --key=value or --section.key=value"
            )
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
        else:
            key = arg[2:]
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError(f"option '--{key}' has no value: write --{key}=VALUE")
            value = argv[i + 1]
            i += 1
        if key == "config_path":
            config_path = value
        else:
            overrides[key] = value
        i += 1
    return config_path, overrides


def _deep_merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def load_config_dict(config_path: str | Path) -> dict:
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist: pass an existing JSON file to --config_path")
    origin = f"config file '{path}'"
    try:
        data = strict_json.loads(strict_json.read_text(path, origin), origin)
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file '{path}' is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a JSON object at the top level")
    return data


def decode_config[T](cls: type[T], data: dict, where: str = "config") -> T:
    """Check keys, then decode a plain dict into ``cls`` with draccus."""
    validate_keys(cls, data, where)
    try:
        return draccus.decode(cls, data)
    except (ValueError, TypeError, draccus.utils.DraccusException) as err:
        # draccus wraps the real problem (e.g. a __post_init__ check); report the innermost one.
        while (err.__cause__ or err.__context__) is not None:
            err = err.__cause__ or err.__context__
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"invalid value in {where}: {first_line}") from None


def parse_config[T](cls: type[T], argv: list[str] | None = None, prog: str | None = None) -> T:
    """Parse ``--config_path`` plus dotted ``--a.b=value`` overrides into ``cls``.

    ``--help`` prints every field with its docstring (draccus' help) and exits.
    """
    argv = list(argv or [])
    if "-h" in argv or "--help" in argv:
        draccus.parse(cls, args=["--help"], prog=prog)  # exits
    config_path, overrides = _split_overrides(argv)
    data = load_config_dict(config_path) if config_path else {}
    if config_path:
        validate_keys(cls, data, f"'{config_path}'")
    override_tree: dict = {}
    for key, raw in overrides.items():
        node = override_tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = cfgparsing.parse_string(raw)
    validate_keys(cls, override_tree, "the command line")
    merged = _deep_merge(data, override_tree)
    return decode_config(cls, merged, f"'{config_path}'" if config_path else "the command line")


def config_to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a config (draccus encoding, so it parses back unchanged)."""
    return draccus.encode(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")
