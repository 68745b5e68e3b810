r"""`hilserl label`: write a NEW dataset whose `next.reward` says which frames show success.

No hand edits of parquet and meta files: the source is only read; the output is
a complete LeRobot v3.0 dataset written through LeRobot's own writer (so indices, lengths, stats,
totals and videos are all recomputed), staged in a temporary sibling folder and renamed into place
only when complete.

    hilserl label ~/data/pick_lift --out ~/data/pick_lift_labeled \
        --cutoffs '{"0": 53, "1": 36, "2": 43, "3": 40, "4": 40, "5": 44, "6": 44, "7": 39, "8": 43, "9": 34}'
    hilserl label ~/data/reach_grasp --out ~/data/reach_grasp_labeled --csv success_frames.csv \
        --flip-camera observation.images.wrist
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from configs.errors import UserError
from reward.dataset import (
    REWARD_KEY,
    V21,
    check_destination,
    is_dataset_root,
    read_info,
    require_camera_keys,
    safe_output,
)
from reward.label_spec import (
    EpisodeLabels,
    labels_from_csv,
    labels_from_cutoffs,
    parse_cutoffs,
    parse_episode_list,
    read_label_csv,
)

logger = logging.getLogger(__name__)

EPILOG = """\
examples:
  # frames >= cutoff are success (every episode needs a cutoff)
  hilserl label ~/data/pick_lift --out ~/data/pick_lift_labeled \\
      --cutoffs '{"0": 53, "1": 36, "2": 43, "3": 40, "4": 40, "5": 44, "6": 44, "7": 39, "8": 43, "9": 34}'
  hilserl label ~/data/pick_lift --out ~/data/pick_lift_labeled --cutoffs cutoffs.json

  # drop whole episodes (a botched demo, a broken last episode); they need no label
  hilserl label ~/data/pick_lift --out ~/data/pick_lift_labeled --cutoffs cutoffs.json --drop-episodes 3,9

  # a success span, reset frames dropped, a failure gap, wrist camera rotated 180 degrees
  hilserl label ~/data/reach_grasp --out ~/data/reach_grasp_labeled --csv success_frames.csv \\
      --flip-camera observation.images.wrist

CSV format (one row per episode; header required):
  episode,success_start,env_reset_start,failure_gaps
  0,63,119,
  4,67,129,78-88
  8,55,nan,
  success_start    first success frame; empty/nan = the episode never succeeds
  env_reset_start  first frame of the reset motion; it and all later frames are DROPPED;
                   empty/nan = no reset frames; 0 = drop the whole episode
  failure_gaps     optional; inclusive ranges inside the success span labeled failure,
                   ';'-separated: 78-88;95-97 (a single frame: 95). A 'notes' column is ignored.

Labels: 1.0 = success, 0.0 = failure, in --reward-key (created when the source lacks it).
The source is never modified; a v2.1 source (meta/episodes.jsonl) is read directly and the output is
written in the v3.0 layout LeRobot 0.4 and 0.6 read. An existing non-empty --out needs --overwrite.
"""


@dataclass(frozen=True)
class LabelSummary:
    """What `hilserl label` wrote."""

    source: str
    output: str
    labels: list[EpisodeLabels]

    @property
    def kept(self) -> int:
        return sum(label.keep for label in self.labels)

    @property
    def success(self) -> int:
        return sum(label.success for label in self.labels)

    @property
    def failure(self) -> int:
        return sum(label.failure for label in self.labels)

    @property
    def dropped(self) -> int:
        return sum(label.dropped for label in self.labels)

    @property
    def dropped_episodes(self) -> int:
        return sum(1 for label in self.labels if label.dropped_whole)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilserl label",
        description="Write a NEW LeRobot v3.0 dataset with per-frame success labels in next.reward.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "src", metavar="SRC_ROOT", help="local dataset root (the folder holding meta/ and data/); only read"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="NEW_ROOT",
        help="root of the labeled dataset to create (outside SRC_ROOT)",
    )
    labels = parser.add_mutually_exclusive_group(required=True)
    labels.add_argument(
        "--cutoffs",
        metavar="JSON|FILE",
        help='per-episode success cutoffs: \'{"0": 53, "1": 36}\' or a JSON file',
    )
    labels.add_argument(
        "--csv",
        metavar="FILE",
        help="CSV of episode,success_start,env_reset_start[,failure_gaps] (see below)",
    )
    parser.add_argument(
        "--drop-episodes",
        metavar="LIST",
        help="leave these episodes out of the output whole, e.g. 3,9 or 3-5 (they need no label); "
        "the kept episodes are renumbered 0..n-1",
    )
    parser.add_argument(
        "--flip-camera",
        action="append",
        default=[],
        metavar="KEY",
        help="rotate this camera's images by 180 degrees (hflip+vflip) while writing; repeatable",
    )
    parser.add_argument(
        "--reward-key", default=REWARD_KEY, help=f"reward column to write (default: {REWARD_KEY})"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty NEW_ROOT (only once the new one is complete)",
    )
    parser.add_argument(
        "--repo-id",
        default=None,
        metavar="NAME",
        help="dataset name recorded by LeRobot (default: local/<NEW_ROOT name>); nothing is pushed",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> LabelSummary:
    """Validate everything, then write the labeled dataset. Raises `UserError` before writing anything."""
    from reward.dataset_source import SourceDataset
    from reward.dataset_write import EpisodePlan, write_dataset

    read_info(args.src)  # a missing/corrupt info.json is reported before anything heavier
    source = SourceDataset(args.src)
    flip_keys = tuple(require_camera_keys(source.features, args.flip_camera))
    _check_reward_key(source.features, args.reward_key)
    drop = parse_episode_list(args.drop_episodes) if args.drop_episodes else set()
    if args.cutoffs is not None:
        labels = labels_from_cutoffs(parse_cutoffs(args.cutoffs), source.lengths, drop)
    else:
        labels = labels_from_csv(read_label_csv(args.csv), source.lengths, origin=str(args.csv), drop=drop)
    if all(label.dropped_whole for label in labels):
        raise UserError("every episode would be dropped, so there is nothing to write; keep at least one")
    check_destination(args.out, [source.root], args.overwrite)
    if source.layout == V21:
        logger.info(
            "%s is in LeRobot's v2.1 layout (meta/episodes.jsonl); reading it directly and writing %s in the "
            "v3.0 layout; the source is left untouched",
            source.root,
            args.out,
        )
    logger.info("labeling %s -> %s", source.describe(), args.out)
    plans = [EpisodePlan(label.episode, label.keep, label.rewards()) for label in labels if label.keep]
    with safe_output(args.out, [source.root], args.overwrite, ours=is_dataset_root) as tmp:
        write_dataset(
            source,
            tmp,
            plans,
            reward_key=args.reward_key,
            flip_keys=flip_keys,
            repo_id=args.repo_id or f"local/{Path(args.out).name}",
            progress=not args.no_progress,
        )
        _check_written(tmp, labels)
    return LabelSummary(str(source.root), str(Path(args.out).expanduser().resolve()), labels)


def _check_reward_key(features: dict, reward_key: str) -> None:
    feature = features.get(reward_key)
    if feature is not None and (feature["dtype"] != "float32" or tuple(feature["shape"]) != (1,)):
        raise UserError(
            f"the dataset's '{reward_key}' is {feature['dtype']} {tuple(feature['shape'])}, not float32 (1,); "
            "pass another --reward-key"
        )


def _check_written(root: Path, labels: list[EpisodeLabels]) -> None:
    """Cheap guard before the rename: the new meta must agree with what was planned."""
    info = read_info(root)
    expected = (sum(1 for label in labels if label.keep), sum(label.keep for label in labels))
    found = (info.get("total_episodes"), info.get("total_frames"))
    if found != expected:
        raise RuntimeError(
            f"the writer produced {found} episodes/frames instead of {expected}; nothing was kept"
        )


def format_summary(summary: LabelSummary) -> str:
    """The printed report: totals, then one row per episode."""
    kept = summary.kept
    share = f"{100 * summary.success / kept:.1f}%" if kept else "-"
    lines = [
        f"labeled {summary.source}",
        f"     -> {summary.output}",
        f"episodes {sum(1 for label in summary.labels if label.keep)}"
        + (f" ({summary.dropped_episodes} dropped whole)" if summary.dropped_episodes else "")
        + f"  frames kept {kept}  success {summary.success}  "
        f"failure {summary.failure}  dropped {summary.dropped}  (success {share})",
        "",
        f"{'episode':>7}  {'kept':>5}  {'success':>7}  {'failure':>7}  {'dropped':>7}  balance",
    ]
    for label in summary.labels:
        balance = f"{100 * label.success / label.keep:5.1f}% success" if label.keep else "dropped whole"
        lines.append(
            f"{label.episode:>7}  {label.keep:>5}  {label.success:>7}  {label.failure:>7}  {label.dropped:>7}  {balance}"
        )
    lines.append(
        f"{'total':>7}  {kept:>5}  {summary.success:>7}  {summary.failure:>7}  {summary.dropped:>7}  {share:>6} success"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("no output was written and the source is untouched") from None
    print(format_summary(summary))
    return 0
