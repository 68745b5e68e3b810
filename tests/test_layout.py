"""Dependency rules of the layout, checked by parsing imports (DESIGN.md section 3)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"configs", "reward", "learner", "actors", "cluster", "benchmarks"}
ALLOWED = {
    "configs": set(),
    "reward": {"configs"},
    "learner": {"configs", "reward"},
    "actors": {"configs", "reward", "learner"},
    "cluster": OURS - {"cluster"},
    "benchmarks": OURS - {"benchmarks"},
}
# The Ray Train entry point is the one module of reward/ that may import Ray.
RAY_ALLOWED_FILES = {"reward/job.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_packages_import_only_what_the_layout_allows():
    problems = []
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            imported = _imports(path)
            for name in (imported & OURS) - allowed - {package}:
                problems.append(f"{rel} imports {name}")
            if (
                package in ("configs", "reward", "learner")
                and "ray" in imported
                and rel not in RAY_ALLOWED_FILES
            ):
                problems.append(f"{rel} imports ray")
    assert not problems, problems


def test_only_cluster_calls_ray_init():
    offenders = [
        p.relative_to(ROOT).as_posix()
        for package in OURS - {"cluster"}
        for p in (ROOT / package).rglob("*.py")
        if "ray.init(" in p.read_text() and p.relative_to(ROOT).as_posix() not in RAY_ALLOWED_FILES
    ]
    assert not offenders, offenders
