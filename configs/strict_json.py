"""JSON and text files as users write them, read strictly, each problem one line that names the fix.

    text = read_text(path, "config file 'x.json'")     # UTF-8 (a byte-order mark is fine), else one line
    data = loads(text, "config file 'x.json'")          # no duplicate keys, no NaN or Infinity

Python's ``json`` keeps the last of two equal keys and accepts ``NaN``/``Infinity``; a config or a
label file with either says something its author did not mean, so both are refused. Syntax errors
stay ``json.JSONDecodeError`` for the caller to word.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from configs.errors import UserError


def read_text(path: str | Path, origin: str) -> str:
    """The file's text as UTF-8 (a leading byte-order mark dropped); other encodings are one line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{origin} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save it as UTF-8"
        ) from None


def _no_duplicates(origin: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise UserError(f"{origin} has the key '{key}' twice; keep one")
            out[key] = value
        return out

    return hook


def _no_constant(origin: str):
    def hook(name: str) -> Any:
        raise UserError(f"{origin} holds {name}, which is not a number JSON allows; write a finite number")

    return hook


def loads(text: str, origin: str) -> Any:
    """``json.loads`` that refuses duplicate keys and NaN/Infinity with one line each."""
    return json.loads(text, object_pairs_hook=_no_duplicates(origin), parse_constant=_no_constant(origin))
