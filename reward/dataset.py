"""LeRobot datasets on local disk: layout, info.json, camera keys, the fingerprint and safe output.

Every function takes an explicit local root and nothing here ever consults the Hugging Face hub
(`LeRobotDataset(repo_id)` without a root can let an older hub copy replace a local recording).
Frames and columns are read by the one reader, `reward.dataset_source` (`iter_episodes`).

    from reward.dataset import dataset_fingerprint, safe_output
    dataset_fingerprint("/data/so101_labeled")                # episodes, frames, classes, label hash
    with safe_output("/data/new", sources=["/data/src"]) as tmp:
        write_a_complete_dataset(tmp)                         # renamed to /data/new only when complete

Two layouts are understood: LeRobot v3.0 (what LeRobot 0.4 and 0.6 read and write) and the older v2.1
(meta/episodes.jsonl, one parquet and one mp4 per episode) the seeds' datasets were recorded in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from configs.errors import UserError

logger = logging.getLogger(__name__)

V30 = "v3.0"
V21 = "v2.1"
INFO_PATH = "meta/info.json"
REWARD_KEY = "next.reward"
CAMERA_DTYPES = ("image", "video")
# Columns every LeRobot dataset has; the writer derives them, so they are never copied from a source.
DERIVED_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def read_info(root: str | Path) -> dict[str, Any]:
    """Load ``root/meta/info.json``; a missing or corrupt file is a `UserError` naming the fix."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(
            f"dataset root {root} does not exist or is not a folder; pass the folder holding meta/ and data/"
        )
    path = root / INFO_PATH
    if not path.is_file():
        raise UserError(
            f"{path} is missing, so {root} is not a LeRobot dataset root; pass the folder that holds meta/info.json"
        )
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = (
            f"{err.msg} at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else "not UTF-8 text"
        )
        raise UserError(f"{path} is corrupt ({reason}); restore it from a copy of the dataset") from None
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict) or "fps" not in info:
        raise UserError(f"{path} has no 'features' or 'fps' entry; restore it from a copy of the dataset")
    for feature in info["features"].values():
        feature["shape"] = tuple(feature.get("shape", ()))
    return info


def detect_layout(root: str | Path, info: Mapping[str, Any] | None = None) -> str:
    """Return ``"v3.0"`` or ``"v2.1"`` (the dataset's ``codebase_version``); anything else is a `UserError`."""
    info = read_info(root) if info is None else info
    version = str(info.get("codebase_version", "unknown"))
    if version == V30:
        return V30
    if version == V21:
        return V21
    raise UserError(
        f"{Path(root) / INFO_PATH} says codebase_version '{version}'; only LeRobot v3.0 and v2.1 datasets are "
        "supported, convert it with the LeRobot release that wrote it"
    )


def camera_keys(source: str | Path | Mapping[str, Any]) -> list[str]:
    """Image and video feature keys of a dataset (a root, an info dict or a features dict)."""
    features = _features_of(source)
    return [key for key, ft in features.items() if ft.get("dtype") in CAMERA_DTYPES]


def resolve_camera_key(key: str, available: Iterable[str]) -> str:
    """Accept a full key (``observation.images.wrist``) or its short camera name (``wrist``)."""
    available = list(available)
    if key in available:
        return key
    if f"observation.images.{key}" in available:
        return f"observation.images.{key}"
    listed = ", ".join(available) if available else "none"
    raise UserError(f"the dataset has no image key '{key}'; its image keys are: {listed}")


def require_camera_keys(source: str | Path | Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    """Resolve configured image keys against a dataset; a missing one is a `UserError` listing those that exist."""
    available = camera_keys(source)
    return [resolve_camera_key(key, available) for key in keys]


def _features_of(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, (str, Path)):
        return read_info(source)["features"]
    return source["features"] if "features" in source else source


def data_files(root: str | Path) -> list[Path]:
    """Parquet data files in reading order (v3.0: data/chunk-*/file-*.parquet, v2.1: one per episode)."""
    return sorted(Path(root).glob("data/*/*.parquet"))


def column_to_numpy(column: Any, dtype: str, shape: tuple[int, ...]):
    """A parquet column as an array of shape (rows, *shape); shape-(1,) features are stored as scalars."""
    import numpy as np
    import pyarrow as pa

    rows = len(column)
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    while (
        pa.types.is_list(array.type)
        or pa.types.is_fixed_size_list(array.type)
        or pa.types.is_large_list(array.type)
    ):
        array = array.flatten()
    return np.asarray(array.to_numpy(zero_copy_only=False)).astype(dtype).reshape(rows, *shape)


def dataset_fingerprint(
    root: str | Path, reward_key: str = REWARD_KEY, episodes: Iterable[int] | None = None
) -> dict[str, Any]:
    """Identify a labeled dataset: root, layout, episodes, frames, class counts and a hash of the labels.

    The one fingerprint of the project: checkpoints record it (metrics.json ``dataset``) and eval-reward
    reports it, so an evaluation can tell which labels a model learned from. The hash covers
    (episode_index, reward) of every selected frame in file order, so relabeling changes it.
    ``episodes`` restricts it to those episode indices (default: all).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root).expanduser().resolve()
    info = read_info(root)
    layout = detect_layout(root, info)
    if reward_key not in info["features"]:
        raise UserError(
            f"{root} has no '{reward_key}' column; label it first with: hilserl label {root} --out NEW_ROOT"
        )
    wanted = None if episodes is None else np.asarray(sorted(set(episodes)), dtype=np.int64)
    digest = hashlib.sha256()
    frames = positives = 0
    seen: set[int] = set()
    for path in data_files(root):
        try:
            table = pq.read_table(path, columns=["episode_index", reward_key])
        except (pa.ArrowException, OSError, KeyError, ValueError) as err:
            reason = " ".join(str(err).split())[:120]
            raise UserError(
                f"{path} is not a readable parquet file ({reason}); restore it from a copy"
            ) from None
        episode = table.column("episode_index").to_numpy().astype(np.int64)
        reward = column_to_numpy(table.column(reward_key), "float32", (-1,)).reshape(-1)
        if wanted is not None:
            keep = np.isin(episode, wanted)
            episode, reward = episode[keep], reward[keep]
        digest.update(episode.tobytes())
        digest.update(reward.tobytes())
        frames += len(episode)
        positives += int((reward > 0.5).sum())
        seen.update(int(e) for e in np.unique(episode))
    sha = digest.hexdigest()
    return {
        "root": str(root),
        "codebase_version": layout,
        "episodes": len(seen),
        "episode_indices": sorted(seen),
        "frames": frames,
        "positives": positives,
        "negatives": frames - positives,
        "reward_key": reward_key,
        "reward_sha256": sha,
        "label_hash": sha[:16],
        # How each camera's frames are stored: 'video' (decoded, lossy) or 'image' (the exact pixels).
        "camera_storage": {
            k: ft.get("dtype") for k, ft in info["features"].items() if ft.get("dtype") in ("video", "image")
        },
    }


# ---------------------------------------------------------------------------------------------- safe output


def refuse_inside(dest: str | Path, sources: Iterable[str | Path], flag: str = "--out") -> Path:
    """Refuse an output that is a source dataset, lies inside one, or contains one; return it resolved.

    Every command that writes calls this with every dataset it reads, before writing anything.
    """
    dest = Path(dest).expanduser().resolve()
    for source in sources:
        source = Path(source).expanduser().resolve()
        if dest == source or source in dest.parents:
            raise UserError(
                f"destination {dest} is inside the source dataset {source}; pass a {flag} outside it, "
                f"e.g. {source.parent / (source.name + '_out')}"
            )
        if dest in source.parents:
            raise UserError(
                f"destination {dest} contains the source dataset {source}; pass a {flag} outside it"
            )
    return dest


def is_dataset_root(path: str | Path) -> bool:
    """Whether ``path`` looks like a dataset root this project (or LeRobot) wrote."""
    return (Path(path) / INFO_PATH).is_file()


def check_destination(
    dest: str | Path,
    sources: Iterable[str | Path],
    overwrite: bool = False,
    ours: Callable[[Path], bool] = is_dataset_root,
    flag: str = "--out",
) -> Path:
    """Validate an output root before anything is written; return it resolved.

    Refused: the source itself, a folder inside a source, a folder containing a source (overwriting it
    would delete the source), a file, an existing non-empty folder unless ``overwrite``, and, even with
    ``overwrite``, a non-empty folder that ``ours`` does not recognise as something the project wrote.
    """
    dest = refuse_inside(dest, sources, flag)
    if dest.exists() and not dest.is_dir():
        raise UserError(f"destination {dest} exists and is not a folder; choose another {flag}")
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise UserError(
                f"destination {dest} already exists and is not empty; pass --overwrite to replace it or choose another {flag}"
            )
        if not ours(dest):
            raise UserError(
                f"destination {dest} holds files hilserl did not write, so --overwrite will not delete them; "
                f"choose another {flag} or empty it yourself"
            )
    return dest


@contextmanager
def safe_output(
    dest: str | Path,
    sources: Iterable[str | Path] = (),
    overwrite: bool = False,
    ours: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``dest`` to write into; rename it to ``dest`` only on success.

    The yielded folder does not exist yet (LeRobot's writer creates it). If the body raises (or is
    interrupted) the temporary folder is removed and ``dest`` is untouched. With ``overwrite`` an existing
    ``dest`` is moved aside and only deleted after the new one is in place.
    """
    dest = check_destination(dest, sources, overwrite, ours=ours or (lambda _: True))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    try:
        yield tmp
        if not tmp.is_dir():
            raise RuntimeError(f"nothing was written to {tmp}")
        _commit(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, dest: Path) -> None:
    old = None
    if dest.is_dir():
        if any(dest.iterdir()):
            old = dest.parent / f".{dest.name}.replaced-{secrets.token_hex(4)}"
            os.replace(dest, old)
            # DEBUG: replacing is what --overwrite (or a newer best checkpoint) asked for
            logger.debug("moved the previous %s aside to %s until the new one is in place", dest, old)
        else:
            dest.rmdir()
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old)
