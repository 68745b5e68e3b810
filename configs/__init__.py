"""Config schema (dataclasses, one docstring per field) and LeRobot-style parsing.

This package depends on nothing else of ours. Presets live next to it as JSON files
(``configs/*.json``); commands take ``--config_path FILE`` plus dotted overrides.
"""

from configs.errors import ConfigError, UserError
from configs.parsing import decode_config, parse_config, save_config

__all__ = ["ConfigError", "UserError", "decode_config", "parse_config", "save_config", "preset_path"]


def preset_path(name: str) -> str:
    """Absolute path of a JSON preset shipped in ``configs/`` (``name`` without ``.json``)."""
    from pathlib import Path

    path = Path(__file__).with_name(f"{name}.json")
    if not path.is_file():
        available = sorted(p.stem for p in Path(__file__).parent.glob("*.json"))
        raise ConfigError(f"no preset '{name}' in configs/: choose one of {available}")
    return str(path)
