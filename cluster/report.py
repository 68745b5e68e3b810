"""The experiment report: one Markdown page with its plots, from run folders and a classifier evaluation.

    write_report(Path("outputs/report"), {"classifier reward": run_a, "sparse reward": [seed_0, seed_1]},
                 classifier_eval_dir=Path("outputs/reward_classifier/eval"), untrained_eval=ev0)

A setting maps to one run folder, or to a list of folders, one per seed (``config.json`` holds the seed;
each seed is a run named "<setting> seed <s>"). A run folder holds history.jsonl (monitor records and,
on lines of their own, periodic evaluation points: ``eval_success_rate``, ``eval_successes``, ...),
eval.json (the final evaluation) and config.json (the resolved config: ``seed``, ``env.fps``).

    out_dir/
        report.md                      the page below, figures linked relatively (plots/...)
        plots/eval_curve.png           the headline: evaluation success against env steps, robot time and
                                       wall-clock (minutes), a colour per setting (thin lines: seeds,
                                       thick: their mean at the common eval steps), dashed at 0.9
        plots/success_intervention.png success and intervention rate against env steps, a line per run
        plots/episode_return.png       episode return against env steps, a line per run
        plots/classifier_agreement.png the classifier against the simulator's true success: false-positive
                                       and false-negative rates against env steps (runs that record them)
        plots/losses.png               learner losses and temperature (``loss/...``), a subplot per key
        plots/classifier_pr_curve.png  copies of eval-reward's pr_curve.png and confusion_matrix.png,
        plots/classifier_confusion_matrix.png   so the folder stands on its own

report.md: a headline table (a row per run: final evaluation without intervention, env steps and
wall-clock at the end of training, the first env step where the rolling success rate reached 0.9
while the human intervened in at most 10 % of steps, intervention rate at start and at end, the first
evaluation point at >= 0.9 success with its robot time and wall-clock), the evaluation curve figure and
a table of its points, the seeds' aggregates (settings with a list of folders), the untrained policy's
evaluation, the classifier's metrics table (every threshold report.json holds), then the other figures.
A figure is drawn only from recorded values; a run lacking a key has no curve there, and the page says
which runs lack which curves.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

PLOTS = "plots"
SUCCESS_LEVEL = 0.9
AGREEMENT_KEYS = (
    "classifier_false_positive_rate",
    "classifier_false_negative_rate",
    "classifier_first_success_miss_rate",
)
METRIC_COLUMNS = (
    "threshold",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "false_positive_rate",
    "confusion_matrix",
)
CLASSIFIER_PLOTS = {"pr_curve": "precision-recall curve", "confusion_matrix": "confusion matrix"}


def load_history(folder: Path) -> list[dict]:
    """The records of a run (history.jsonl: monitor records and evaluation points), oldest first; [] when
    the run has none."""
    path = Path(folder) / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(env_steps, value) of the records holding a finite ``key``."""
    pairs = [(r["env_steps"], r[key]) for r in history if "env_steps" in r and _finite(r.get(key))]
    return [p[0] for p in pairs], [float(p[1]) for p in pairs]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _is_eval(record: dict) -> bool:
    return "eval_success_rate" in record


def _config(folder: Path) -> dict:
    """The run's resolved config (config.json); {} without one."""
    return _load_json(Path(folder) / "config.json") or {}


def first_step_reaching(history: list[dict], key: str = "success_rate", level: float = SUCCESS_LEVEL):
    """The first env step at which ``key`` (a rolling rate) reached ``level``; None if it never did."""
    steps, values = _series(history, key)
    return next((s for s, v in zip(steps, values, strict=True) if v >= level), None)


def _wall_clocks(history: list[dict]) -> list[float | None]:
    """Training wall-clock at each record (None before the first wall_s): wall_s restarts at every resume,
    so the finished segments' last values are added to the current one."""
    clocks, done, last = [], 0.0, None
    for record in history:
        wall = record.get("wall_s")
        if _finite(wall):
            if last is not None and wall < last:
                done += last
            last = wall
        clocks.append(None if last is None else done + last)
    return clocks


def wall_clock_at(history: list[dict], step: float | None) -> float | None:
    """Training wall-clock when the run first logged ``step`` env steps in a monitor record (resumed
    segments summed)."""
    if step is None:
        return None
    clocks = _wall_clocks(history)
    return next(
        (c for r, c in zip(history, clocks, strict=True) if r.get("env_steps") == step and not _is_eval(r)),
        None,
    )


def wall_clock_s(history: list[dict]) -> float | None:
    """Training wall-clock: wall_s restarts at every resume, so the segments' last values are summed."""
    clocks = _wall_clocks(history)
    return clocks[-1] if clocks else None


def eval_curve(history: list[dict], fps: float | None = None) -> list[dict]:
    """The evaluation points in file order, each a dict: env_steps, robot_time_s (the record's, else
    env_steps / ``fps`` when given, else None), wall_s (training wall-clock at that line, resumed segments
    summed), success_rate, successes, episodes, policy_version."""
    points = []
    for record, clock in zip(history, _wall_clocks(history), strict=True):
        if not _is_eval(record):
            continue
        robot = record.get("robot_time_s")
        if not _finite(robot) and fps:
            robot = record["env_steps"] / fps
        points.append(
            {
                "env_steps": int(record["env_steps"]),
                "robot_time_s": float(robot) if _finite(robot) else None,
                "wall_s": clock,
                "success_rate": float(record["eval_success_rate"]),
                "successes": _count(record.get("eval_successes")),
                "episodes": _count(record.get("eval_episodes")),
                "policy_version": record.get("eval_policy_version"),
            }
        )
    return points


def _count(value: Any) -> int | None:
    """An episode count as an int (histories of earlier versions wrote floats)."""
    return int(value) if _finite(value) else None


def steps_to_level(
    history: list[dict], level: float = SUCCESS_LEVEL, fps: float | None = None
) -> dict | None:
    """The first evaluation point (an ``eval_curve`` dict: env_steps, robot_time_s, wall_s, ...) whose
    success rate is >= ``level``; None if no point reached it."""
    return next((p for p in eval_curve(history, fps) if p["success_rate"] >= level), None)


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The mean over the non-empty curves at the env steps they all hold: dicts of env_steps, robot_time_s,
    wall_s, success_rate (a run's last point at a step counts; a None is left out of its mean)."""
    by_step = [{p["env_steps"]: p for p in curve} for curve in curves if curve]
    if not by_step:
        return []

    def mean(step: int, key: str) -> float | None:
        values = [c[step][key] for c in by_step if c[step][key] is not None]
        return sum(values) / len(values) if values else None

    common = sorted(set.intersection(*(set(c) for c in by_step)))
    return [
        {"env_steps": s, **{k: mean(s, k) for k in ("robot_time_s", "wall_s", "success_rate")}}
        for s in common
    ]


def _window_mean(steps: list[float], values: list[float], first: bool, share: float = 0.05) -> float | None:
    """Mean of ``values`` over the first (or last) ``share`` of the env steps; None without values."""
    if not values:
        return None
    span = steps[-1] - steps[0]
    if first:
        picked = [v for s, v in zip(steps, values, strict=True) if s <= steps[0] + share * span]
    else:
        picked = [v for s, v in zip(steps, values, strict=True) if s >= steps[-1] - share * span]
    return sum(picked) / len(picked)


def run_summary(name: str, folder: Path) -> dict[str, Any]:
    """The headline numbers of one run."""
    folder = Path(folder)
    history = load_history(folder)
    monitor = [r for r in history if not _is_eval(r)]
    started = [r for r in monitor if r.get("episodes", 1) > 0]  # a rate means something after an episode
    at, interventions = _series(started, "intervention_rate")
    steps, _ = _series(monitor, "env_steps")
    config = _config(folder)
    fps = (config.get("env") or {}).get("fps")
    classifiers = _load_json(folder / "classifier.json") or [{}]
    last = classifiers[-1]
    # The rolling training success counts the human's rescues: only records where the policy acted
    # almost alone (<= 10 % intervention) count toward "reached". It is the simulator's success where
    # the run recorded it: success_rate is the reward's own judgement, which a policy can learn to
    # fool (a classifier's false positives).
    key = "true_success_rate" if _series(monitor, "true_success_rate")[0] else "success_rate"
    reached = first_step_reaching([h for h in started if h.get("intervention_rate", 1.0) <= 0.1], key=key)
    return {
        "name": name,
        "folder": str(folder),
        "history": history,
        "reward": Path(last["path"]).name if last.get("path") else last.get("source", "-"),
        "eval": _load_json(folder / "eval.json"),
        "env_steps": int(steps[-1]) if steps else None,
        "wall_s": wall_clock_s(history),
        "success_key": key,
        "reached": reached,
        "reached_wall_s": wall_clock_at(history, reached),
        # Rolling rates of the first and last 5 % of the run (one early episode alone says little).
        "intervention_start": _window_mean(at, interventions, first=True),
        "intervention_end": _window_mean(at, interventions, first=False),
        "seed": config.get("seed"),
        "curve": eval_curve(history, fps),
        "eval_reached": steps_to_level(history, fps=fps),
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def _seed_aggregates(summaries: list[dict]) -> dict[str, Any]:
    finals = [s["eval"]["success_rate"] for s in summaries if s["eval"]]
    reached = [s["eval_reached"]["env_steps"] for s in summaries if s["eval_reached"]]
    return {
        "seeds": [s["seed"] for s in summaries],
        "final_success": {**_stats(finals), "n": len(finals)},
        "steps_to_90": {**_stats(reached), "reached": len(reached), "n": len(summaries)},
    }


def seed_summary(folders: list[Path]) -> dict[str, Any]:
    """Aggregates over a setting's seed folders: ``seeds`` (config.json's seed per folder), ``final_success``
    {mean, min, max, n} of eval.json's success rate over the n folders holding one (None values without
    any), ``steps_to_90`` {mean, min, max, reached, n}: the first eval point at >= 0.9 success, over the
    ``reached`` of the n seeds that got there."""
    return _seed_aggregates([run_summary(str(folder), folder) for folder in folders])


def format_seed_summary(name: str, summary: dict[str, Any]) -> str:
    """One line: final success and steps to 90 % over the seeds, mean [min, max]."""
    final, reach = summary["final_success"], summary["steps_to_90"]
    count = len(summary["seeds"])
    text = f"{name}: {count} seed{'' if count == 1 else 's'}"
    if final.get("mean") is not None:
        text += f", final success {final['mean']:.0%} [{final['min']:.0%}, {final['max']:.0%}]"
    if reach.get("reached"):
        text += (
            f", steps to 90 % {reach['mean']:.0f} [{reach['min']:.0f}, {reach['max']:.0f}] "
            f"({reach['reached']} of {reach['n']} seeds reached it)"
        )
    elif reach.get("n"):
        text += f", steps to 90 %: no seed of {reach['n']} reached it"
    return text


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def format_eval(ev: dict | None) -> str:
    """'85% (17/20)' for an evaluation dict (eval.json); '-' without one."""
    if not ev:
        return "-"
    return f"{ev['success_rate']:.0%} ({ev.get('successes', '?')}/{ev.get('episodes', '?')})"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def _eval_reached_cell(summary: dict) -> str:
    """'1000 (robot 1m40s, wall-clock 0m31s)', 'not reached', or '-' for a run without eval points."""
    if not summary["curve"]:
        return "-"
    point = summary["eval_reached"]
    if point is None:
        return "not reached"
    return (
        f"{point['env_steps']} (robot {_duration(point['robot_time_s'])}, "
        f"wall-clock {_duration(point['wall_s'])})"
    )


def headline_table(summaries: list[dict]) -> list[str]:
    """The Markdown table: a row per run."""
    lines = [
        f"| run | reward | eval success (no intervention) | env steps | wall-clock | "
        f"first step (wall-clock) at training success >= {SUCCESS_LEVEL:.0%} with <= 10% intervention | "
        f"intervention start -> end | steps to {SUCCESS_LEVEL * 100:.0f} % (eval): env steps "
        "(robot time, wall-clock) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        reached = (
            "not reached"
            if s["reached"] is None
            else f"{int(s['reached'])} ({_duration(s.get('reached_wall_s'))})"
        )
        lines.append(
            f"| {s['name']} | {s['reward']} | {format_eval(s['eval'])} | {s['env_steps'] or '-'} | "
            f"{_duration(s['wall_s'])} | {reached} | "
            f"{_rate(s['intervention_start'])} -> {_rate(s['intervention_end'])} | {_eval_reached_cell(s)} |"
        )
    return lines


EVAL_AXES = (
    ("env_steps", 1, "env steps"),
    ("robot_time_s", 60, "robot time (min)"),
    ("wall_s", 60, "wall-clock (min)"),
)


def plot_eval_curves(path: Path, groups: dict[str, list[dict]], seeded: set[str]) -> bool:
    """Evaluation success against env steps, robot time and wall-clock (minutes), side by side: a colour
    per setting, its runs' summaries in ``groups``; a ``seeded`` setting has a thin line per seed and a
    thick line for their mean. Returns False, drawing nothing, when no run has an eval point."""
    if not any(s["curve"] for group in groups.values() for s in group):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(EVAL_AXES), figsize=(4.6 * len(EVAL_AXES), 3.6))
    for i, (setting, group) in enumerate(groups.items()):
        curves = [s["curve"] for s in group]
        if setting in seeded:
            lines = [(c, 0.8, 0.45, None) for c in curves]
            lines.append((mean_curve(curves), 2.4, 1.0, f"{setting} (mean of {len(curves)} seeds)"))
        else:
            lines = [(curves[0], 1.6, 1.0, setting)]
        for ax, (key, scale, _) in zip(axes, EVAL_AXES, strict=True):
            for points, width, alpha, label in lines:
                drawn = [p for p in points if p[key] is not None]
                if drawn:
                    ax.plot(
                        [p[key] / scale for p in drawn],
                        [p["success_rate"] for p in drawn],
                        color=f"C{i % 10}",
                        linewidth=width,
                        alpha=alpha,
                        label=label,
                        marker="." if len(drawn) < 30 else None,
                    )
    from matplotlib.ticker import MaxNLocator

    for ax, (_, _, xlabel) in zip(axes, EVAL_AXES, strict=True):
        ax.axhline(SUCCESS_LEVEL, color="gray", linestyle="--", linewidth=0.8)
        ax.set(xlabel=xlabel, ylim=(-0.03, 1.03))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # 20,000 steps: ticks that do not collide
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("eval success (no intervention)")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def eval_curve_section(plots: Path, groups: dict[str, list[dict]], seeded: set[str]) -> list[str]:
    """The headline figure (plots/eval_curve.png) and a table of every run's eval points."""
    title = "Evaluation success during training"
    lines = [f"## {title}", ""]
    if not plot_eval_curves(plots / "eval_curve.png", groups, seeded):
        return lines + [
            "No run records evaluation points (`eval_success_rate` in history.jsonl): no figure.",
            "",
        ]
    summaries = [s for group in groups.values() for s in group]
    lines += [
        f"![{title}]({PLOTS}/eval_curve.png)",
        "",
        f"Success of the policy without intervention at periodic evaluations; dashed: {SUCCESS_LEVEL:.0%}."
        + (" Thin lines: seeds; thick: their mean at the eval steps every seed holds." if seeded else ""),
        "",
    ]
    missing = [s["name"] for s in summaries if not s["curve"]]
    if missing:
        lines += [f"No evaluation points (no curve): {', '.join(missing)}.", ""]
    lines += ["| run | env steps | robot time | wall-clock | success (k/K) |", "|---|---|---|---|---|"]
    for s in summaries:
        lines += [
            f"| {s['name']} | {p['env_steps']} | {_duration(p['robot_time_s'])} | {_duration(p['wall_s'])} "
            f"| {format_eval(p)} |"
            for p in s["curve"]
        ]
    return lines + [""]


def seeds_section(groups: dict[str, list[dict]], seeded: set[str]) -> list[str]:
    """Per seeded setting: the final evaluation's and the steps to 0.9 (eval)'s mean, min and max."""
    if not seeded:
        return []
    level = f"{SUCCESS_LEVEL * 100:.0f} %"
    lines = [
        "## Seeds",
        "",
        f"| setting | seeds | final eval success: mean (min, max) | steps to {level} (eval): mean (min, max) |",
        "|---|---|---|---|",
    ]
    for setting in (name for name in groups if name in seeded):
        agg = _seed_aggregates(groups[setting])
        final, steps = agg["final_success"], agg["steps_to_90"]
        final_cell = (
            "-"
            if final["mean"] is None
            else f"{final['mean']:.0%} ({final['min']:.0%}, {final['max']:.0%})"
            + (f", {final['n']} of {steps['n']} seeds evaluated" if final["n"] < steps["n"] else "")
        )
        steps_cell = (
            "" if steps["mean"] is None else f"{steps['mean']:.0f} ({steps['min']}, {steps['max']}); "
        )
        seeds = ", ".join(str(s) for s in agg["seeds"])
        lines.append(
            f"| {setting} | {steps['n']} ({seeds}) | {final_cell} | "
            f"{steps_cell}{steps['reached']} of {steps['n']} seeds reached it |"
        )
    return lines + [""]


def plot_lines(path: Path, summaries: list[dict], keys: list[str]) -> list[str] | None:
    """A subplot per key, a line per run holding it, against env steps. Returns the missing 'run: key'
    pairs; draws nothing (and returns None) when no run holds any key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {(s["name"], k): _series(s["history"], k) for s in summaries for k in keys}
    if not any(xs for xs, _ in series.values()):
        return None
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):  # the grid may have spare axes
        for s in summaries:
            xs, ys = series[(s["name"], key)]
            if xs:
                ax.plot(xs, ys, label=s["name"], marker="." if len(xs) < 30 else None)
        ax.set(xlabel="env steps", title=key)
        if key.endswith("_rate"):
            ax.set_ylim(-0.03, 1.03)
        if key in ("success_rate", "true_success_rate"):
            ax.axhline(SUCCESS_LEVEL, color="gray", linestyle="--", linewidth=0.8)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [f"{name}: {key}" for (name, key), (xs, _) in series.items() if not xs]


def loss_keys(summaries: list[dict]) -> list[str]:
    """The ``loss/...`` keys any run records, in first-seen order."""
    keys: dict[str, None] = {}
    for s in summaries:
        for record in s["history"]:
            keys.update((k, None) for k in record if k.startswith("loss/"))
    return list(keys)


def figures(plots: Path, summaries: list[dict]) -> list[str]:
    """Draw every figure; the Markdown that embeds them, or says why one is absent."""
    specs = [
        (
            "Success and intervention rate",
            "success_intervention.png",
            ["success_rate", "true_success_rate", "intervention_rate"]
            if any(s["success_key"] == "true_success_rate" for s in summaries)
            else ["success_rate", "intervention_rate"],
        ),
        ("Episode return", "episode_return.png", ["episode_return"]),
        (
            "Classifier agreement with the simulator's success",
            "classifier_agreement.png",
            list(AGREEMENT_KEYS),
        ),
        ("Learner losses and temperature", "losses.png", loss_keys(summaries)),
    ]
    lines = ["## Figures", ""]
    for title, filename, keys in specs:
        missing = plot_lines(plots / filename, summaries, keys) if keys else None
        lines.append(f"### {title}")
        lines.append("")
        if missing is None:
            lines.append(f"No run records {', '.join(keys) or 'these values'}: no figure.")
        else:
            lines.append(f"![{title}]({PLOTS}/{filename})")
            if missing:
                lines += ["", f"Not recorded (no curve): {'; '.join(missing)}."]
        lines.append("")
    return lines


def untrained_section(untrained_eval: dict | None) -> list[str]:
    lines = ["## Untrained policy", ""]
    if not untrained_eval:
        return lines + ["No evaluation of the untrained policy was given.", ""]
    return lines + [
        f"Success without intervention: {format_eval(untrained_eval)}, "
        f"mean return {untrained_eval.get('mean_return', float('nan')):.3f}.",
        "",
    ]


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("-" if value is None else str(value))


def classifier_section(eval_dir: Path | None, plots: Path) -> list[str]:
    """The classifier's metrics table from report.json, its plots copied into ``plots``."""
    lines = ["## Reward classifier", ""]
    report = _load_json(Path(eval_dir) / "report.json") if eval_dir else None
    if report is None:
        return lines + [f"No classifier evaluation ({'none given' if not eval_dir else eval_dir}).", ""]
    lines += [f"Checkpoint: `{report.get('checkpoint', '-')}`", ""]
    data = report.get("dataset") or {}
    if data:
        lines += [
            f"Evaluated on `{data.get('root')}`: {data.get('episodes')} episodes, {data.get('frames')} frames, "
            f"{data.get('positives')} success frames.",
            "",
        ]
    lines += [
        "| threshold name | " + " | ".join(METRIC_COLUMNS) + " |",
        "|---" * (len(METRIC_COLUMNS) + 1) + "|",
    ]
    for name, m in (report.get("metrics") or {}).items():
        lines.append(f"| {name} | " + " | ".join(_cell(m.get(c)) for c in METRIC_COLUMNS) + " |")
    lines.append("")
    if report.get("average_precision") is not None:
        lines += [f"Average precision: {report['average_precision']:.3f}", ""]
    for name, title in CLASSIFIER_PLOTS.items():
        source = Path(eval_dir) / f"{name}.png"
        if source.is_file():
            plots.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, plots / f"classifier_{name}.png")
            lines += [f"![classifier {title}]({PLOTS}/classifier_{name}.png)", ""]
        else:
            lines += [f"No {title} ({source} is missing).", ""]
    return lines


def next_classifier_section(comparison: dict | None) -> list[str]:
    """The old and the next classifier on the same held-out episodes (``cluster.demo.next_classifier_step``)."""
    if not comparison:
        return []
    lines = ["## The next classifier", ""]
    if not comparison.get("checkpoint"):
        return lines + [comparison.get("reason", "No next classifier was trained."), ""]
    trained_on = ", ".join(f"`{p}`" for p in comparison.get("trained_on") or []) or "the demos"
    lines += [
        f"Trained on the old classifier's data ({trained_on}) plus the run's disagreement log "
        f"({comparison['log_frames']} frames: those the "
        f"frozen classifier got wrong, and successes it confirmed; {', '.join(f'`{p}`' for p in comparison['logs'])}). "
        f"Checkpoint: `{comparison['checkpoint']}`. Both are scored at their own run-time threshold (best F1).",
        "",
        "| held-out episodes | frames | failure frames | false positive rate, old -> next "
        "| false negative rate, old -> next |",
        "|---|---|---|---|---|",
    ]
    for row in comparison["rows"]:
        old, new = row["old"], row["next"]
        lines.append(
            f"| {row['name']} (`{row['root']}`) | {row['frames']} | {row['negatives']} "
            f"| {_cell(old.get('false_positive_rate'))} -> {_cell(new.get('false_positive_rate'))} "
            f"| {_cell(old.get('false_negative_rate'))} -> {_cell(new.get('false_negative_rate'))} |"
        )
    return lines + [""]


def extra_section(extra: dict | None) -> list[str]:
    if not extra:
        return []
    lines = ["## Notes", "", "| key | value |", "|---|---|"]
    return lines + [f"| {k} | {_cell(v)} |" for k, v in extra.items()] + [""]


def _setting_summaries(setting: str, folders: Path | list[Path]) -> list[dict]:
    """The run summaries of a setting: one for a folder; one per seed, named "<setting> seed <s>", for a list."""
    if not isinstance(folders, (list, tuple)):
        return [run_summary(setting, folders)]
    return [run_summary(f"{setting} seed {_config(f).get('seed', i)}", f) for i, f in enumerate(folders)]


def write_report(
    out_dir: Path,
    runs: dict[str, Path | list[Path]],
    classifier_eval_dir: Path | None,
    untrained_eval: dict | None = None,
    extra: dict | None = None,
    next_classifier: dict | None = None,
) -> Path:
    """Write ``out_dir/report.md`` and ``out_dir/plots/*.png``; returns the path of report.md. ``runs`` maps a
    setting to its run folder, or to a list of folders, one per seed."""
    out_dir = Path(out_dir)
    plots = out_dir / PLOTS
    plots.mkdir(parents=True, exist_ok=True)
    groups = {setting: _setting_summaries(setting, folders) for setting, folders in runs.items()}
    seeded = {setting for setting, folders in runs.items() if isinstance(folders, (list, tuple))}
    summaries = [s for group in groups.values() for s in group]
    lines = ["# HIL-SERL experiment report", "", "## Runs", ""]
    lines += headline_table(summaries) + [""]
    lines += [f"- {s['name']}: `{s['folder']}`" for s in summaries] + [""]
    if any(s["success_key"] == "true_success_rate" for s in summaries):
        lines += [
            "Training success in this table is the simulator's own success (`true_success_rate`). In the "
            "figures, `success_rate` is what the reward judged (for the classifier run, the classifier), "
            "which a policy can learn to fool: the gap between the two is the classifier's false positives "
            "at work.",
            "",
        ]
    lines += eval_curve_section(plots, groups, seeded)
    lines += seeds_section(groups, seeded)
    lines += untrained_section(untrained_eval)
    lines += classifier_section(classifier_eval_dir, plots)
    lines += next_classifier_section(next_classifier)
    lines += figures(plots, summaries)
    lines += extra_section(extra)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
