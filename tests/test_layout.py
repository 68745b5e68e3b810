"""Dependency rules of the layout (docs/architecture.md), checked two ways that cannot be bypassed.

1. Statically: every import of every module, relative imports resolved against the module's package
   and ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name counted as imports.
2. At run time: every module of configs/, vision/, reward/, learner/ and lab/ is imported in a fresh interpreter whose
   ``sys.meta_path`` refuses ``ray``, so an import of Ray by any route (a helper in another package,
   a dynamic import at module level, ``from ray import init``) fails the test.

Ray lives in cluster/ only: it is the one package that may import it or call ``ray.init``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"configs", "vision", "reward", "learner", "actors", "cluster", "benchmarks", "lab"}
ALLOWED = {
    "configs": set(),
    "vision": {"configs"},
    "reward": {"configs", "vision"},
    "learner": {"configs", "vision", "reward"},
    "actors": {"configs", "vision", "reward", "learner"},
    "cluster": OURS - {"cluster", "lab"},
    "benchmarks": OURS - {"benchmarks", "lab"},
    "lab": {"configs", "vision", "reward", "learner"},
}
NO_RAY = ("configs", "vision", "reward", "learner", "lab")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (``from . import x`` inside reward.train -> reward)."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (statically visible forms)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module, is_package = _module_name(path), path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            resolved = _resolve(node, module, is_package)
            if resolved:
                names.add(resolved.split(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.lstrip(".").split(".")[0] or module.split(".")[0])
    return names


def test_packages_import_only_what_the_layout_allows():
    problems = []
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            imported = imports_of(path)
            for name in (imported & OURS) - allowed - {package}:
                problems.append(f"{rel} imports {name}")
            if package in NO_RAY and "ray" in imported:
                problems.append(f"{rel} imports ray")
    assert not problems, problems


def test_only_cluster_calls_ray_init():
    offenders = [
        p.relative_to(ROOT).as_posix()
        for package in OURS - {"cluster"}
        for p in (ROOT / package).rglob("*.py")
        if "ray.init(" in p.read_text() or "init(" in p.read_text() and "from ray import" in p.read_text()
    ]
    assert not offenders, offenders


_REFUSE_RAY = r"""
import importlib, json, sys, traceback

class RefuseRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"'{name}' imported outside cluster/")
        return None

sys.meta_path.insert(0, RefuseRay())
failures = {}
for module in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module)
    except BaseException as err:  # noqa: BLE001 - report every module that fails
        failures[module] = "".join(traceback.format_exception_only(type(err), err)).strip()
print(json.dumps(failures))
"""


def test_configs_reward_learner_import_without_ray():
    modules = sorted(_module_name(path) for package in NO_RAY for path in (ROOT / package).rglob("*.py"))
    result = subprocess.run(
        [sys.executable, "-c", _REFUSE_RAY, json.dumps(modules)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert not failures, failures


def test_the_checks_catch_the_known_bypasses(tmp_path, monkeypatch):
    """Each way around the old test is caught by one of the two checks."""
    package = tmp_path / "reward"
    package.mkdir()
    (package / "__init__.py").write_text("")
    cases = {
        "relative.py": "from ..cluster import train_job\n",
        "dynamic.py": "import importlib\nimportlib.import_module('ray')\n",
        "from_ray.py": "from ray import init\n",
    }
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    for name, text in cases.items():
        (package / name).write_text(text)
    found = {name: imports_of(package / name) for name in cases}
    assert "cluster" in found["relative.py"]
    assert "ray" in found["dynamic.py"] and "ray" in found["from_ray.py"]
    # learner importing a reward module that imports Ray: only the run-time check can see it.
    (package / "uses_ray.py").write_text("import ray\n")
    learner = tmp_path / "learner"
    learner.mkdir()
    (learner / "__init__.py").write_text("")
    (learner / "sneaky.py").write_text("from reward import uses_ray\n")
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("")  # a stand-in Ray that would import fine
    result = subprocess.run(
        [sys.executable, "-c", _REFUSE_RAY, json.dumps(["learner.sneaky"])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    failures = json.loads(result.stdout.strip().splitlines()[-1])
    assert "imported outside cluster/" in failures["learner.sneaky"]


# The vision layer's own names: defined in vision/ and nowhere else, so the classifier and the
# policy cannot drift apart on how a frame is preprocessed, encoded or identified.
VISION_NAMES = {
    "ResNet10",
    "SpatialLearnedEmbeddings",
    "load_resnet10",
    "preprocess_images",
    "FrozenBackbone",
    "weights_sha256",
    "load_transformer",
    "CameraEncoder",
    "FeatureEncoder",
    "random_shift",
}
IMAGENET_MEAN_LITERAL = "0.485"


def test_the_vision_layer_lives_in_vision_only():
    problems = []
    for package in OURS - {"vision"}:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            text = path.read_text()
            for node in ast.walk(ast.parse(text, filename=rel)):
                if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name in VISION_NAMES:
                    problems.append(f"{rel} defines {node.name} (it belongs in vision/)")
            if IMAGENET_MEAN_LITERAL in text:
                problems.append(f"{rel} normalizes images itself (use vision.preprocess)")
    assert not problems, problems
    defined = {
        node.name
        for path in (ROOT / "vision").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef | ast.FunctionDef)
    }
    assert VISION_NAMES <= defined, VISION_NAMES - defined
