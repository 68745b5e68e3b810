"""The replay role: ``learner.replay.MixedReplay`` behind an acknowledged ``add``, durable on disk.

    role = ReplayRole(cfg.learner, folder="run/replay")
    ack = role.add(robot_id, seq, transitions)      # logged (fsync) before it is acknowledged
    batches = role.sample(256, 2)                    # UTD batches for one learner update

Durability: every acknowledged chunk is appended to a log segment (length-prefixed pickle,
flushed and fsynced) *before* the ack; every ``snapshot_every`` transitions (and on request) the
buffers are saved atomically (``MixedReplay.save`` into a temp folder, renamed) together with the
log position they cover, and older segments are deleted. A restarted role loads the snapshot
and replays the newer segments, so it has every acknowledged transition::

    replay/snapshot-000003/{online,demo}.npz + meta.json   (covers log segments < 3)
    replay/snapshot.json                                   (names the current snapshot; os.replace'd)
    replay/log-000003.bin                                  (chunks acknowledged since)

Chunks carry (robot_id, seq): a chunk re-sent after a lost ack is recognised and not added twice.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from configs.learner import LearnerConfig
from learner.replay import MixedReplay
from learner.types import Batch, Transition

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<Q")  # payload length


class ReplayRole:
    """Online + demo buffers with an append-only log and atomic snapshots."""

    def __init__(self, cfg: LearnerConfig, folder: str | Path, snapshot_every: int = 2000, backbone=None):
        self.cfg = cfg
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.snapshot_every = int(snapshot_every)
        self.backbone = backbone
        self.seen: dict[str, int] = {}  # robot id -> highest seq added
        self.versions: dict[int, int] = {}  # policy version -> transitions added since this start
        self.since_snapshot = 0
        self.segment = 0
        self.replay = self._recover()
        self._log = open(self._segment_path(self.segment), "ab")  # noqa: SIM115  (held for the role's life)

    # ------------------------------------------------------------------ recovery
    def _segment_path(self, index: int) -> Path:
        return self.folder / f"log-{index:06d}.bin"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.folder.glob("log-*.bin"))

    def _recover(self) -> MixedReplay:
        if self.backbone is None and self.cfg.uses_feature_replay:
            from vision.backbone import FrozenBackbone

            self.backbone = FrozenBackbone.from_config(self.cfg).to(self.cfg.device)
        pointer = self.folder / "snapshot.json"
        first = 0
        if pointer.is_file():
            snapshot = self.folder / json.loads(pointer.read_text())["snapshot"]
            meta = json.loads((snapshot / "meta.json").read_text())
            replay = MixedReplay.load(snapshot, self.cfg.online_ratio, backbone=self.backbone)
            self.seen = {k: int(v) for k, v in meta["seen"].items()}
            first = int(meta["next_segment"])
        else:
            replay = MixedReplay.from_config(self.cfg, backbone=self.backbone)
        replayed = 0
        segments = [s for s in self._segments() if s >= first]
        for index in segments:
            for robot, seq, chunk in self._read_segment(self._segment_path(index)):
                if seq > self.seen.get(robot, -1):
                    replay.extend(chunk)
                    self.seen[robot] = seq
                    replayed += len(chunk)
        self.since_snapshot = replayed
        # New appends go to a fresh segment: a torn tail of the last one is never appended to.
        self.segment = max([first - 1, *segments]) + 1
        if replayed or first:
            logger.info("replay recovered: snapshot up to segment %d, %d logged transitions", first, replayed)
        return replay

    @staticmethod
    def _read_segment(path: Path):
        with open(path, "rb") as f:
            while True:
                header = f.read(HEADER.size)
                if len(header) < HEADER.size:
                    return
                (size,) = HEADER.unpack(header)
                payload = f.read(size)
                if len(payload) < size:  # torn write: never acknowledged
                    logger.warning("%s ends in a partial record (never acknowledged); ignored", path.name)
                    return
                yield pickle.loads(payload)

    # ------------------------------------------------------------------ API
    def add(self, robot: str, seq: int, transitions: list[Transition]) -> dict[str, int]:
        """Log, then add a chunk; returns the ack. A chunk already added (same robot, seq) is skipped."""
        if seq <= self.seen.get(robot, -1):
            return {"seq": seq, "added": 0, "duplicate": 1}
        payload = pickle.dumps((robot, seq, transitions), protocol=pickle.HIGHEST_PROTOCOL)
        self._log.write(HEADER.pack(len(payload)) + payload)
        self._log.flush()
        os.fsync(self._log.fileno())
        self.replay.extend(transitions)
        self.seen[robot] = seq
        for t in transitions:  # which policy versions produced the data (-1: the human)
            version = int(t.complementary_info.get("policy_version", -1))
            self.versions[version] = self.versions.get(version, 0) + 1
        self.since_snapshot += len(transitions)
        if self.since_snapshot >= self.snapshot_every:
            self.snapshot()
        return {"seq": seq, "added": len(transitions), "duplicate": 0}

    def next_seq(self, robot: str) -> int:
        """The seq a (re)started robot continues from: nothing it sends is mistaken for a duplicate."""
        return self.seen.get(robot, -1) + 1

    def sample(self, batch_size: int, count: int = 1) -> list[Batch]:
        """``count`` mixed batches (one learner update's worth at UTD ``count``)."""
        return [self.replay.sample(batch_size) for _ in range(count)]

    def sizes(self) -> dict[str, int]:
        return {
            "online": len(self.replay.online),
            "demo": len(self.replay.demo),
            "added": int(self.replay.online.added),
        }

    def import_demos(self, root: str) -> int:
        """Offline demonstrations into the demo buffer (snapshotted at once: they are not in the log)."""
        from learner.demos import import_lerobot_dataset

        added = import_lerobot_dataset(self.replay.demo, root)
        self.snapshot()
        return added

    def snapshot(self) -> Path:
        """Save the buffers atomically with the log position they cover; drop the covered segments."""
        self._log.close()
        next_segment = self.segment + 1
        name = f"snapshot-{next_segment:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.folder))
        try:
            self.replay.save(tmp)
            (tmp / "meta.json").write_text(json.dumps({"next_segment": next_segment, "seen": self.seen}))
            os.replace(tmp, self.folder / name)
            pointer_tmp = self.folder / ".snapshot.json.tmp"
            pointer_tmp.write_text(json.dumps({"snapshot": name}))
            os.replace(pointer_tmp, self.folder / "snapshot.json")  # the switch: atomic
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            self._log = open(self._segment_path(self.segment), "ab")  # noqa: SIM115
            raise
        # Only now is anything the new snapshot covers deleted.
        for old in self.folder.glob("snapshot-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        for index in self._segments():
            if index < next_segment:
                self._segment_path(index).unlink(missing_ok=True)
        self.segment = next_segment
        self._log = open(self._segment_path(self.segment), "ab")  # noqa: SIM115
        self.since_snapshot = 0
        return self.folder / name

    def status(self) -> dict[str, Any]:
        return {
            **self.sizes(),
            "robots": dict(self.seen),
            "segment": self.segment,
            "versions": dict(self.versions),
            # frames the replay ran through the backbone itself (demos at import; online frames only
            # without the robot's maps: runtime.encode_once=false, other weights, stored shifts)
            "backbone_frames": self.replay.online.encoder.frames_encoded if self.replay.online.encoder else 0,
        }

    def close(self) -> None:
        self._log.close()
