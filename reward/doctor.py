"""`hilserl doctor`: find dataset defects that would otherwise be fixed by hand, and repair them into a copy.

Exit code 0 when the dataset is clean, 1 when defects are found (or remain), 2 for bad input.
`--fix --out NEW_ROOT` rewrites every frame through LeRobot's writer into a new v3.0 root (the
source is never modified), which recomputes lengths, indices, stats, totals and videos; doctor then
checks the copy. Frames whose video is missing cannot be recreated: then nothing is written.

    hilserl doctor ~/data/reach_grasp
    hilserl doctor ~/data/reach_grasp --fix --out ~/data/reach_grasp_fixed
"""

from __future__ import annotations

import argparse
import logging

from reward.dataset import REWARD_KEY, check_destination, read_info

logger = logging.getLogger(__name__)

EPILOG = """\
checks:
  episode lengths and offsets in meta vs the data files, contiguous global index, frame_index and
  timestamps, info.json totals, per-episode and global stats (recomputed and compared), video files
  present and holding every frame, the reward column, and the v2.1 layout (LeRobot 0.4 and 0.6 read v3.0).

exit codes: 0 clean, 1 defects found (or left after --fix), 2 bad input.

examples:
  hilserl doctor ~/data/reach_grasp
  hilserl doctor ~/data/reach_grasp --fix --out ~/data/reach_grasp_fixed
  hilserl doctor ~/data/old_v21_dataset --fix --out ~/data/converted_v30   # v2.1 -> v3.0
  hilserl doctor ~/data/killed_mid_save --fix --drop-lost --out ~/data/recovered

A missing reward column is reported but not invented: label the data with `hilserl label`.
Missing or short videos cannot be repaired (the frames are gone): --fix then writes nothing, unless
--drop-lost leaves those episodes out of the copy.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilserl doctor",
        description="Find defects in a local LeRobot dataset (v3.0 or v2.1); optionally write a repaired copy.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "dataset",
        metavar="DATASET",
        help="local dataset root (the folder holding meta/ and data/); only read",
    )
    parser.add_argument(
        "--fix", action="store_true", help="write a repaired copy to --out (the source is never modified)"
    )
    parser.add_argument(
        "--out", metavar="NEW_ROOT", help="root of the repaired copy (with --fix; outside DATASET)"
    )
    parser.add_argument(
        "--drop-lost",
        action="store_true",
        help="with --fix: leave out of the copy the episodes whose frames are lost (missing or short "
        "videos, e.g. a recording killed mid-save); the rest are renumbered",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing non-empty NEW_ROOT (only once the copy is complete)",
    )
    parser.add_argument(
        "--reward-key", default=REWARD_KEY, help=f"reward column to expect (default: {REWARD_KEY})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def format_findings(findings: list) -> str:
    lines = []
    for finding in findings:
        lines.append(f"  [{finding.check}] {finding.problem}")
        lines.append(f"      fix: {finding.fix}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Check (and with --fix repair into a copy); print the report; return the exit code."""
    from reward.dataset_checks import FIX, LOST, check_dataset
    from reward.dataset_source import SourceDataset

    read_info(args.dataset)
    source = SourceDataset(args.dataset, skip_unreadable=True)
    if args.fix:
        check_destination(args.out, [source.root], args.overwrite)
    findings = check_dataset(source, args.reward_key)
    print(f"doctor: {source.describe()}")
    if not findings:
        print("no defects found" + ("; nothing to fix, nothing written" if args.fix else ""))
        return 0
    print(f"found {len(findings)} defect(s):")
    print(format_findings(findings))
    if not args.fix:
        if any(f.repair == FIX for f in findings):
            print(f"repair into a new root with: hilserl doctor {source.root} --fix --out NEW_ROOT")
        return 1

    lost = [f for f in findings if f.repair == LOST]
    drop: set[int] = set()
    if lost:
        drop = {e for f in lost for e in f.episodes}
        if not args.drop_lost or not all(f.droppable for f in lost):
            print(
                "cannot repair: frames whose video is missing or short cannot be recreated from anything; "
                "nothing was written (restore the videos, or leave those episodes out of the copy with "
                f"--fix --drop-lost: episode(s) {sorted(drop)})"
            )
            return 1
        if not set(source.lengths) - drop:
            print("cannot repair: every episode has lost frames; nothing was written (restore the videos)")
            return 1
        print(
            f"--drop-lost: leaving out episode(s) {sorted(drop)} and {len(source.unreadable)} unreadable file(s); "
            "the rest are renumbered"
        )
    from reward.dataset_write import rewrite_dataset

    rewrite_dataset(
        source.root,
        args.out,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        drop=drop,
        skip_unreadable=args.drop_lost,
    )
    repaired = SourceDataset(args.out)
    remaining = check_dataset(repaired, args.reward_key)
    print(f"wrote a repaired copy: {repaired.describe()}")
    if remaining:
        print(f"still {len(remaining)} defect(s) in the copy:")
        print(format_findings(remaining))
        return 1
    print("doctor finds the copy clean")
    return 0


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fix and not args.out:
        parser.error("--fix needs --out NEW_ROOT (the source is never modified)")
    if args.out and not args.fix:
        parser.error("--out is only used with --fix")
    if args.drop_lost and not args.fix:
        parser.error("--drop-lost is only used with --fix --out NEW_ROOT")
    try:
        return run(args)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("no output was written and the source is untouched") from None
