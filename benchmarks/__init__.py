"""`hilserl bench NAME [--json]`: side-by-side benchmarks, ours against the LeRobot baseline.

Each benchmark runs both implementations in one process on the same data, warms up before
timing, quotes medians, records the machine, and prints one JSON document.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "classifier": ("benchmarks.classifier", "reward classifier: training recipe, accuracy, inference fps"),
    "env": ("benchmarks.env", "simulated SO-101 env steps/s vs gym-hil's Panda scene"),
    "replay": ("benchmarks.replay", "replay storage: bytes/transition, batches/s vs LeRobot ReplayBuffer"),
    "learner": (
        "benchmarks.learner",
        "SAC updates/s and weight-push bytes vs LeRobot's SAC (GaussianActorPolicy + SACAlgorithm)",
    ),
    "reward": ("benchmarks.reward", "reward actor on Ray: round trip p50/p99, batched vs per-frame fps"),
    "run": ("benchmarks.run", "a short HIL-SERL run on Ray: steps/s, updates/s, 10 Hz period, version lag"),
}


def machine_info() -> dict:
    """What the numbers were measured on."""
    import os
    import platform

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hilserl bench {" + ",".join(BENCHMARKS) + "} [--json] [options]\n")
        for name, (_, help_) in BENCHMARKS.items():
            print(f"  {name:<11} {help_}")
        return 0
    name = argv[0]
    if name not in BENCHMARKS:
        print(
            f"hilserl bench: unknown benchmark '{name}': choose one of {sorted(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    module = importlib.import_module(BENCHMARKS[name][0])
    return int(module.main(argv[1:]) or 0)
