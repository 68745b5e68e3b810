"""`hilserl`: one console script, one subcommand per step of the user's day.

Each subcommand lives in its own module and is imported only when used, so `hilserl --help`
is instant and a command never pays for another's imports (torch, ray, mujoco).

This dispatcher is the one place that turns errors into exit codes: a `UserError` is one line on
stderr (exit 2), Ctrl-C is one line (exit 130; a command may raise ``KeyboardInterrupt(message)``
to say what it left behind), and a closed pipe (``hilserl doctor ... | head``) ends quietly.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from configs.errors import UserError

# name -> (module, function, one-line help). The function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("cluster.demo", "main", "run the most complete pipeline on the simulated default"),
    "run": ("cluster.rl_run", "main", "the HIL-SERL run on Ray: robot, reward, replay and learner actors"),
    "runs": (
        "cluster.rl_run",
        "runs_main",
        "list past runs: date, classifier, env steps, success, checkpoint",
    ),
    "label": ("reward.label", "main", "write a NEW dataset with next.reward set from cutoffs or a CSV"),
    "doctor": ("reward.doctor", "main", "find (and with --fix --out, repair into a copy) dataset defects"),
    "train-reward": ("cluster.train_job", "main", "train the reward classifier (Ray Train TorchTrainer)"),
    "eval-reward": ("reward.evaluate", "main", "evaluate a classifier checkpoint on a dataset"),
    "record": ("actors.loop.record", "main", "record episodes (sim or real SO-101) into a new dataset"),
    "servo-sim": ("actors.robots.servo_sim.cli", "main", "simulated STS3215 servo bus on a pty"),
    "bench": (
        "benchmarks",
        "main",
        "side-by-side benchmarks against LeRobot (classifier, env, replay, learner)",
    ),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: hilserl <command> [options]    (hilserl <command> --help for its options)",
        "",
        "HIL-SERL for the SO-101 on Ray, with a learned reward.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # SVT-AV1 (LeRobot's video encoder) prints a banner per video file at its default level.
    os.environ.setdefault("SVT_LOG", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # "No OpenGL_accelerate module loaded" at import
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        print(f"hilserl: unknown command '{name}'{hint} (see hilserl --help)", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        code = int(func(rest) or 0)
        sys.stdout.flush()
        return code
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        detail = str(err) or "stopped by Ctrl-C"
        print(f"interrupted: {detail}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop writing, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
