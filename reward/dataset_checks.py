"""Dataset defects `hilserl doctor` looks for, which would otherwise have to be found and fixed by hand.

Each check compares what meta/ claims with what the data and video files hold:

    episode lengths    meta/episodes (.jsonl in v2.1) vs rows per episode in the data files
    episode offsets    dataset_from_index/to_index (v3.0) vs row positions
    global index       `index` must run 0..N-1 in file order; `frame_index` 0..len-1; timestamps frame/fps
    totals             info.json total_frames / total_episodes / total_tasks (v2.1: total_videos, chunks)
    stats              per-episode and global stats vs stats recomputed from the data (numeric features)
    videos             every episode's video segment exists and decodes to as many frames as it needs
    reward             the reward column exists
    layout             v2.1 datasets cannot be opened by LeRobot 0.4 or 0.6

    findings = check_dataset(SourceDataset(root))        # [] when clean
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reward.dataset import CAMERA_DTYPES, REWARD_KEY, V21, V30
from reward.dataset_source import SourceDataset, decode_video_frames

FIX = "fix"  # doctor --fix repairs it in the copy
LABEL = "label"  # needs labels: hilserl label
LOST = "lost"  # data are gone; no copy can restore them

STAT_NAMES = ("min", "max", "mean", "std", "count")


@dataclass(frozen=True)
class Finding:
    """One defect: which check, what is wrong, how to fix it, and whether --fix can."""

    check: str
    problem: str
    fix: str
    repair: str = FIX
    episodes: tuple[int, ...] = ()
    """For a LOST finding: the episodes whose frames are gone (``doctor --fix --drop-lost`` leaves them out)."""
    droppable: bool = False
    """For a LOST finding: ``--drop-lost`` can write a copy without the lost frames."""


def check_dataset(
    source: SourceDataset, reward_key: str = REWARD_KEY, check_videos: bool = True
) -> list[Finding]:
    """All findings for a dataset read from its files (empty list: clean)."""
    findings: list[Finding] = []
    if source.layout == V21:
        findings.append(
            Finding(
                "layout",
                "the dataset is in LeRobot's v2.1 layout (meta/episodes.jsonl), which LeRobot (0.4 and 0.6) and the classifier trainer cannot open",
                "--fix writes a v3.0 copy",
            )
        )
    if source.unreadable:
        listed = sorted(
            e
            for e, row in source.meta_episodes.items()
            if any(_holds(source, row, path) for path in source.unreadable)
        )
        findings.append(
            Finding(
                "files-unreadable",
                f"{_listing([_relative(p, source.root) for p in source.unreadable])} cannot be read (no parquet "
                "footer: the session was most likely killed while saving an episode)"
                + (f"; it holds episode(s) {listed}" if listed else ""),
                "restore the files from a copy, or write a copy without them: --fix --drop-lost",
                LOST,
                tuple(listed),
                droppable=True,
            )
        )
    columns = {episode: source.episode_columns(episode) for episode in source.episodes}
    findings += _check_episode_meta(source)
    findings += _check_indices(source, columns)
    findings += _check_totals(source)
    findings += _check_stats(source, columns)
    if check_videos:
        findings += _check_videos(source, columns)
    if reward_key not in source.features or any(reward_key not in c for c in columns.values()):
        findings.append(
            Finding(
                "reward",
                f"there is no '{reward_key}' column, so a reward classifier has no labels to learn from",
                f"label the frames: hilserl label {source.root} --out NEW_ROOT --cutoffs ... | --csv ...",
                LABEL,
            )
        )
    return findings


def _holds(source: SourceDataset, row: dict, path: Path) -> bool:
    """Whether the episode-meta ``row`` points at data file ``path``."""
    chunk, index = row.get("data/chunk_index"), row.get("data/file_index")
    if chunk is None or index is None:
        return False
    template = source.info.get("data_path", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
    return path == source.root / template.format(chunk_index=int(chunk), file_index=int(index))


def _listing(items: list[str], limit: int = 4) -> str:
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def _check_episode_meta(source: SourceDataset) -> list[Finding]:
    findings = []
    where = "meta/episodes" if source.layout == V30 else "meta/episodes.jsonl"
    meta, data = set(source.meta_episodes), set(source.lengths)
    if data - meta:
        findings.append(
            Finding(
                "episodes",
                f"{where} lacks episode(s) {sorted(data - meta)} that the data files hold",
                "rebuild meta from the data files",
            )
        )
    if meta - data:
        findings.append(
            Finding(
                "episodes",
                f"{where} lists episode(s) {sorted(meta - data)} that the data files lack",
                "rebuild meta from the data files",
            )
        )
    if sorted(data) != list(range(len(data))):
        findings.append(
            Finding("episodes", f"episode indices are not 0..{len(data) - 1}", "renumber episodes")
        )
    wrong = [
        f"episode {e}: meta {source.meta_episodes[e].get('length')}, data {n}"
        for e, n in source.lengths.items()
        if e in source.meta_episodes and source.meta_episodes[e].get("length") != n
    ]
    if wrong:
        findings.append(
            Finding(
                "episode-lengths",
                f"{where} lengths disagree with the data files ({_listing(wrong)})",
                "rewrite the lengths from the data files",
            )
        )
    if source.layout == V30:
        offsets, start = [], 0
        for e, n in source.lengths.items():
            row = source.meta_episodes.get(e)
            if row is not None and (row.get("dataset_from_index"), row.get("dataset_to_index")) != (
                start,
                start + n,
            ):
                offsets.append(
                    f"episode {e}: meta {row.get('dataset_from_index')}-{row.get('dataset_to_index')}, data {start}-{start + n}"
                )
            start += n
        if offsets:
            findings.append(
                Finding(
                    "episode-offsets",
                    f"dataset_from_index/to_index disagree with the data files ({_listing(offsets)})",
                    "rewrite the offsets",
                )
            )
    return findings


def _check_indices(source: SourceDataset, columns: dict[int, dict[str, np.ndarray]]) -> list[Finding]:
    findings = []
    index = np.concatenate(
        [c["index"].reshape(-1) for c in columns.values() if "index" in c] or [np.zeros(0)]
    )
    expected = np.arange(len(index))
    if len(index) != source.total_frames or not np.array_equal(index, expected):
        at = int(np.flatnonzero(index != expected)[0]) if len(index) == len(expected) and len(index) else 0
        findings.append(
            Finding(
                "global-index",
                f"the global 'index' column is not contiguous 0..{source.total_frames - 1} (frame {at} has index {int(index[at]) if len(index) else '-'})",
                "renumber index over all frames",
            )
        )
    frames, times = [], []
    for episode, c in columns.items():
        n = source.lengths[episode]
        if "frame_index" in c and not np.array_equal(c["frame_index"].reshape(-1), np.arange(n)):
            frames.append(f"episode {episode}")
        if "timestamp" in c and not np.allclose(
            c["timestamp"].reshape(-1), np.arange(n) / source.fps, atol=1e-3
        ):
            times.append(f"episode {episode}")
    if frames:
        findings.append(
            Finding(
                "frame-index",
                f"frame_index does not run 0..length-1 in {_listing(frames)}",
                "renumber frame_index",
            )
        )
    if times:
        findings.append(
            Finding(
                "timestamps", f"timestamps are not frame_index/fps in {_listing(times)}", "rewrite timestamps"
            )
        )
    return findings


def _check_totals(source: SourceDataset) -> list[Finding]:
    info = source.info
    expected = {
        "total_frames": source.total_frames,
        "total_episodes": len(source.lengths),
        "total_tasks": len(source.tasks),
    }
    if source.layout == V21:
        expected["total_videos"] = len(source.lengths) * len(source.video_keys)
        expected["total_chunks"] = max(source.lengths) // int(info.get("chunks_size", 1000)) + 1
    wrong = [
        f"{key} {info.get(key)} (data: {value})" for key, value in expected.items() if info.get(key) != value
    ]
    if wrong:
        return [
            Finding(
                "totals", f"meta/info.json has {_listing(wrong)}", "rewrite the totals from the data files"
            )
        ]
    return []


def _numeric_keys(source: SourceDataset, columns: dict[int, dict[str, np.ndarray]]) -> list[str]:
    first = next(iter(columns.values()))
    return [
        k for k, ft in source.features.items() if ft["dtype"] not in (*CAMERA_DTYPES, "string") and k in first
    ]


def _stats(values: np.ndarray) -> dict[str, np.ndarray]:
    values = values.reshape(len(values), -1).astype(np.float64)
    return {
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
        "count": np.array([len(values)]),
    }


def _stale(recorded: dict, fresh: dict[str, np.ndarray]) -> str | None:
    """Name the first recorded stat that disagrees with the fresh one (None when all agree)."""
    scale = 1.0 + float(np.max(np.abs(np.concatenate([fresh["min"], fresh["max"]]))))
    for name in STAT_NAMES:
        if name not in recorded:
            continue
        value = np.asarray(recorded[name], dtype=np.float64).reshape(-1)
        if value.shape != fresh[name].shape:
            return f"{name} has shape {value.shape}"
        # LeRobot computes std from float32 running moments, so allow cancellation error relative to the range.
        tolerance = 1e-3 * scale if name == "std" else 1e-4 * scale
        close = np.isclose(value, fresh[name], rtol=1e-3, atol=tolerance)
        if not close.all():
            i = int(np.flatnonzero(~close)[0])
            where = f"{name}[{i}]" if len(value) > 1 else name
            return f"{where} {value[i]:.4g} recorded, {fresh[name][i]:.4g} in the data"
    return None


def _recorded_episode_stats(source: SourceDataset) -> dict[int, dict[str, dict]]:
    if source.layout == V30:
        out: dict[int, dict[str, dict]] = {}
        for episode, row in source.meta_episodes.items():
            stats: dict[str, dict] = {}
            for column, value in row.items():
                if column.startswith("stats/") and value is not None:
                    key, name = column.removeprefix("stats/").rsplit("/", 1)
                    stats.setdefault(key, {})[name] = value
            out[episode] = stats
        return out
    path = source.root / "meta/episodes_stats.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(row["episode_index"]): row.get("stats", {}) for row in rows}


def _check_stats(source: SourceDataset, columns: dict[int, dict[str, np.ndarray]]) -> list[Finding]:
    findings = []
    keys = _numeric_keys(source, columns)
    recorded = _recorded_episode_stats(source)
    where = "meta/episodes stats" if source.layout == V30 else "meta/episodes_stats.jsonl"
    missing = [e for e in source.lengths if e not in recorded or not recorded[e]]
    if missing:
        findings.append(
            Finding(
                "episode-stats",
                f"{where} has no stats for episode(s) {_short_list(missing)}",
                "recompute per-episode stats",
            )
        )
    stale = []
    for episode, c in columns.items():
        for key in keys:
            if key in recorded.get(episode, {}):
                reason = _stale(recorded[episode][key], _stats(c[key]))
                if reason:
                    stale.append(f"episode {episode} '{key}': {reason}")
    if stale:
        findings.append(
            Finding(
                "episode-stats",
                f"{where} are stale ({_listing(stale, 3)})",
                "recompute per-episode stats from the data",
            )
        )
    if source.layout == V30:
        findings += _check_global_stats(source, columns, keys)
    return findings


def _check_global_stats(
    source: SourceDataset, columns: dict[int, dict[str, np.ndarray]], keys: list[str]
) -> list[Finding]:
    path = source.root / "meta/stats.json"
    if not path.is_file():
        return [Finding("stats", "meta/stats.json is missing", "recompute the global stats")]
    try:
        recorded = json.loads(path.read_text())
    except json.JSONDecodeError:
        return [Finding("stats", "meta/stats.json is corrupt", "recompute the global stats")]
    stale = []
    for key in keys:
        if key in recorded:
            reason = _stale(recorded[key], _stats(np.concatenate([c[key] for c in columns.values()])))
            if reason:
                stale.append(f"'{key}': {reason}")
    if stale:
        return [
            Finding(
                "stats",
                f"meta/stats.json is stale ({_listing(stale, 3)})",
                "recompute the global stats from the data",
            )
        ]
    return []


def _short_list(values: list[int]) -> str:
    return ", ".join(map(str, values[:8])) + (f" (+{len(values) - 8} more)" if len(values) > 8 else "")


def _check_videos(source: SourceDataset, columns: dict[int, dict[str, np.ndarray]]) -> list[Finding]:
    missing, short = [], []
    missing_episodes: set[int] = set()
    short_episodes: set[int] = set()
    for key in source.video_keys:
        for episode, c in columns.items():
            n = source.lengths[episode]
            try:
                segment = source.video_segment(episode, key)
            except Exception as err:  # a meta row without video entries: nothing to locate
                missing.append(f"episode {episode} {key} ({err})")
                missing_episodes.add(episode)
                continue
            if not segment.path.is_file():
                missing.append(f"{_relative(segment.path, source.root)} (episode {episode})")
                missing_episodes.add(episode)
                continue
            timestamps = c["timestamp"].reshape(-1) if "timestamp" in c else np.arange(n) / source.fps
            try:
                _, found = decode_video_frames(
                    segment.path,
                    segment.from_timestamp + timestamps.astype(np.float64),
                    source.fps,
                    keep_pixels=False,
                )
            except Exception as err:  # undecodable file: as good as missing
                missing.append(
                    f"{_relative(segment.path, source.root)} (episode {episode}: unreadable, {type(err).__name__})"
                )
                missing_episodes.add(episode)
                continue
            duration_short = (
                segment.to_timestamp is not None
                and segment.to_timestamp - segment.from_timestamp < n / source.fps - 0.5 / source.fps
            )
            if not found.all() or duration_short:
                short.append(f"episode {episode} {key}: {int(found.sum())} of {n} frames decodable")
                short_episodes.add(episode)
    findings = []
    if missing:
        findings.append(
            Finding(
                "videos-missing",
                f"video files are missing or unreadable: {_listing(missing)}",
                "restore the files from a copy or re-record those episodes; their frames cannot be recreated "
                "(--fix --drop-lost writes a copy without them)",
                LOST,
                tuple(sorted(missing_episodes)),
                droppable=True,
            )
        )
    if short:
        findings.append(
            Finding(
                "videos-short",
                f"videos hold fewer frames than their episodes: {_listing(short)}",
                "restore the files, or keep only the frames that exist (hilserl label --csv with env_reset_start = "
                "frames decodable), or leave those episodes out (--fix --drop-lost)",
                LOST,
                tuple(sorted(short_episodes)),
                droppable=True,
            )
        )
    return findings


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
