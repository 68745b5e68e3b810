"""Per-episode success labels from cutoffs or a CSV, validated against a dataset.

Cutoffs: ``{"0": 53, "1": 36}`` (or the Python form ``{0: 53, 1: 36}``): frames >= cutoff of
that episode are success (1.0), earlier frames failure (0.0).

CSV, one row per episode::

    episode,success_start,env_reset_start,failure_gaps
    0,63,119,
    4,67,129,78-88
    8,55,nan,

``success_start``: first success frame (empty or nan: the episode never succeeds).
``env_reset_start``: first frame of the reset motion; it and everything after are dropped (empty or
nan: no reset frames; 0: the whole episode is dropped, e.g. a broken or botched one). ``failure_gaps`` (optional): inclusive frame ranges inside the success span
that are failure, ``;``-separated (``78-88;95-97``); a single frame is ``95``. A ``notes`` column is
ignored.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from configs import strict_json
from configs.errors import UserError

CSV_COLUMNS = ("episode", "success_start", "env_reset_start")
CSV_OPTIONAL = ("failure_gaps",)
CSV_IGNORED = ("notes",)


@dataclass(frozen=True)
class EpisodeLabels:
    """Labels of one source episode: frames [success_start, keep) are success except the gaps."""

    episode: int
    length: int
    success_start: int
    keep: int
    failure_gaps: tuple[tuple[int, int], ...] = ()

    def rewards(self) -> np.ndarray:
        """(keep,) float32: 1.0 success, 0.0 failure."""
        rewards = np.zeros(self.keep, dtype=np.float32)
        rewards[self.success_start : self.keep] = 1.0
        for first, last in self.failure_gaps:
            rewards[first : last + 1] = 0.0
        return rewards

    @property
    def success(self) -> int:
        return int(self.rewards().sum())

    @property
    def failure(self) -> int:
        return self.keep - self.success

    @property
    def dropped(self) -> int:
        return self.length - self.keep

    @property
    def dropped_whole(self) -> bool:
        return self.keep == 0


def parse_episode_list(value: str, what: str = "--drop-episodes") -> set[int]:
    """``3,7`` or ``3-5,9``: a set of episode indices."""
    episodes: set[int] = set()
    for part in value.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        start = _integer(first, f"{what} '{part}'")
        end = _integer(last, f"{what} '{part}'") if sep else start
        if end < start:
            raise UserError(f"{what} '{part}' ends before it starts; write FIRST-LAST with FIRST <= LAST")
        episodes.update(range(start, end + 1))
    if not episodes:
        raise UserError(f"{what} '{value}' names no episode; pass e.g. {what} 3,7 or 3-5")
    return episodes


def _dropped(drop: set[int], lengths: dict[int, int], origin: str) -> set[int]:
    unknown = sorted(set(drop) - set(lengths))
    if unknown:
        raise UserError(
            f"{origin} names episode(s) {_short(unknown)} that the dataset lacks; it has episodes "
            f"{min(lengths)}-{max(lengths)} ({len(lengths)} episodes)"
        )
    return set(drop)


def parse_cutoffs(value: str) -> dict[int, int]:
    """``--cutoffs``: inline JSON (``{"0": 53}``), a Python dict (``{0: 53}``) or a path to a JSON file."""
    text = value.strip()
    origin = "--cutoffs"
    if not text.startswith("{"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise UserError(
                f"--cutoffs '{value}' is neither a JSON object nor an existing file; pass '{{\"0\": 53, \"1\": 36}}' or FILE.json"
            )
        origin = str(path)
        text = strict_json.read_text(path, origin)
    try:
        raw = strict_json.loads(text, origin)
    except json.JSONDecodeError:
        try:
            raw = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError(
                f'{origin} is not a JSON object of episode: cutoff pairs; write it like {{"0": 53, "1": 36}}'
            ) from None
    if not isinstance(raw, dict) or not raw:
        raise UserError(
            f'{origin} must be a non-empty object of episode: cutoff pairs, like {{"0": 53, "1": 36}}'
        )
    cutoffs = {}
    for key, cutoff in raw.items():
        episode = _integer(key, f"{origin}: episode '{key}'")
        cutoffs[episode] = _integer(cutoff, f"{origin}: the cutoff of episode {episode}")
    return cutoffs


def labels_from_cutoffs(
    cutoffs: dict[int, int], lengths: dict[int, int], drop: set[int] = frozenset()
) -> list[EpisodeLabels]:
    """One `EpisodeLabels` per dataset episode; every episode not in ``drop`` needs a cutoff within
    0..length (a dropped one keeps no frame and needs none)."""
    drop = _dropped(drop, lengths, "--drop-episodes")
    _check_episodes(set(cutoffs) | drop, lengths, "--cutoffs")
    labels = []
    for episode, length in lengths.items():
        if episode in drop:
            labels.append(EpisodeLabels(episode, length, 0, 0))
            continue
        cutoff = cutoffs[episode]
        if not 0 <= cutoff <= length:
            raise UserError(
                f"the cutoff {cutoff} of episode {episode} is outside its {length} frames; use 0..{length} "
                f"({length} = no success frames)"
            )
        labels.append(EpisodeLabels(episode, length, cutoff, length))
    return labels


def read_label_csv(path: str | Path) -> dict[int, tuple[int | None, int | None, tuple[tuple[int, int], ...]]]:
    """Parse the CSV into ``episode -> (success_start, env_reset_start, failure_gaps)`` (None = empty/nan)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"--csv {path} does not exist; pass a CSV with columns {', '.join(CSV_COLUMNS)}")
    with io.StringIO(strict_json.read_text(path, str(path)), newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in columns]
        if missing:
            raise UserError(
                f"{path} lacks the column(s) {', '.join(missing)}; its header must be {','.join(CSV_COLUMNS)}[,failure_gaps]"
            )
        unknown = [c for c in columns if c not in (*CSV_COLUMNS, *CSV_OPTIONAL, *CSV_IGNORED)]
        if unknown:
            raise UserError(
                f"{path} has unknown column(s) {', '.join(unknown)}; valid: {', '.join(CSV_COLUMNS + CSV_OPTIONAL + CSV_IGNORED)}"
            )
        rows = {}
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            where = f"{path} line {line}"
            episode = _integer(row["episode"], f"{where}: episode")
            if episode in rows:
                raise UserError(f"{where}: episode {episode} appears twice; keep one row per episode")
            success = _optional_integer(row["success_start"], f"{where}: success_start")
            reset = _optional_integer(row["env_reset_start"], f"{where}: env_reset_start")
            gaps = _gaps(row.get("failure_gaps", ""), f"{where}: failure_gaps")
            rows[episode] = (success, reset, gaps)
    if not rows:
        raise UserError(
            f"{path} has no rows; add one row per episode under the header {','.join(CSV_COLUMNS)}"
        )
    return rows


def labels_from_csv(
    rows: dict, lengths: dict[int, int], origin: str = "--csv", drop: set[int] = frozenset()
) -> list[EpisodeLabels]:
    """One `EpisodeLabels` per dataset episode from parsed CSV rows, checked against episode lengths.
    An episode in ``drop``, or whose ``env_reset_start`` is 0, is dropped whole (keep 0)."""
    drop = _dropped(drop, lengths, "--drop-episodes")
    _check_episodes(set(rows) | drop, lengths, origin)
    labels = []
    for episode, length in lengths.items():
        if episode in drop or rows[episode][1] == 0:
            if episode not in drop and rows[episode][0] not in (None, 0):
                raise UserError(
                    f"{origin}: episode {episode} has env_reset_start 0 (dropped whole) but success_start "
                    f"{rows[episode][0]}; leave success_start empty for a dropped episode"
                )
            labels.append(EpisodeLabels(episode, length, 0, 0))
            continue
        success, reset, gaps = rows[episode]
        keep = length if reset is None else reset
        if not 1 <= keep <= length:
            raise UserError(
                f"{origin}: env_reset_start {reset} of episode {episode} is outside 0..{length} (its length); "
                "leave it empty when the episode has no reset frames, 0 drops the whole episode"
            )
        start = keep if success is None else success
        if not 0 <= start <= keep:
            raise UserError(
                f"{origin}: success_start {success} of episode {episode} is outside 0..{keep} "
                f"(env_reset_start or length); leave it empty when the episode never succeeds"
            )
        for first, last in gaps:
            if not start <= first <= last < keep:
                raise UserError(
                    f"{origin}: failure gap {first}-{last} of episode {episode} is not inside its success span "
                    f"{start}-{keep - 1}; gaps are inclusive frame ranges within the success frames"
                )
        labels.append(EpisodeLabels(episode, length, start, keep, gaps))
    return labels


def _check_episodes(given: set[int], lengths: dict[int, int], origin: str) -> None:
    unknown = sorted(given - set(lengths))
    if unknown:
        raise UserError(
            f"{origin} names episode(s) {_short(unknown)} that the dataset lacks; it has episodes "
            f"{min(lengths)}-{max(lengths)} ({len(lengths)} episodes)"
        )
    missing = sorted(set(lengths) - given)
    if missing:
        raise UserError(f"{origin} has no label for episode(s) {_short(missing)}; every episode needs one")


def _short(values: list[int]) -> str:
    return ", ".join(map(str, values[:10])) + (f" (+{len(values) - 10} more)" if len(values) > 10 else "")


def _integer(value: object, what: str) -> int:
    """An int from JSON/CSV text; integral floats like ``119.0`` (pandas writes them next to NaN) pass."""
    if isinstance(value, bool):
        raise UserError(f"{what} is {value!r}, not a frame number; use a whole number")
    if isinstance(value, int):
        return value
    try:
        number = float(str(value).strip())
    except ValueError:
        raise UserError(f"{what} is '{value}', not a number; use a whole frame number") from None
    if not math.isfinite(number) or number != int(number):
        raise UserError(f"{what} is '{value}', not a whole frame number; use an integer")
    return int(number)


def _optional_integer(value: str, what: str) -> int | None:
    if value.strip().lower() in ("", "nan", "none", "null"):
        return None
    return _integer(value, what)


def _gaps(value: str, what: str) -> tuple[tuple[int, int], ...]:
    gaps = []
    for part in value.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        if not sep:
            last = first
        start, end = _integer(first, f"{what} '{part}'"), _integer(last, f"{what} '{part}'")
        if end < start:
            raise UserError(f"{what} '{part}' ends before it starts; write FIRST-LAST with FIRST <= LAST")
        gaps.append((start, end))
    return tuple(sorted(gaps))
