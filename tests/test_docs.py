"""The docs hold: the README's first lines, every link and anchor, every command and flag shown.

1. README.md opens with the two commands (install + the main job, install + the tests) and stays a
   front page (under 300 lines).
2. Every relative link in README.md and docs/*.md names an existing file, and every ``#anchor``
   (in the same file or ``file.md#anchor``) names a heading of its target, by GitHub's rule.
3. Every ``hilserl <command>`` in a code block or an inline code span exists: its ``--help`` runs
   (all in one subprocess, through ``cluster.cli.main``), and every flag shown with it is one that
   help lists. A dotted key (``--robot.port``) must be listed in full or extend an option that help
   lists as a ``Dict`` (``--robot.cameras Dict``: its keys are free).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FIRST_BLOCK = [
    "bash scripts/install.sh && .venv/bin/hilserl demo",
    "bash scripts/install.sh && .venv/bin/python -m pytest -q",
]
MAX_README_LINES = 300

# Flags a command reads itself before its config parser sees the rest, so its --help does not list
# them: (command, flag) -> where it is read.
EXTRA_FLAGS: dict[tuple[str, str], str] = {
    ("record", "json"): "actors/loop/record.py main takes --json (print the summary as JSON) out of argv",
    ("run", "rehearse"): "cluster/rl_run.py main reads a bare --rehearse as --env.rehearse=true",
}

# Commands whose flags cannot be read from `hilserl <command> --help`, with the reason. Each is run
# with the argv given instead (it must exit 0), and its flags are checked against the set given.
NO_HELP: dict[str, tuple[str, list[str], set[str]]] = {}

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
COMMAND = re.compile(r"(?:^|[\s/])hilserl\s+([a-z][a-z0-9-]*)")
# Where a command's arguments end: a shell operator, a pipe into another program (not a usage
# synopsis's `(--cutoffs JSON | --csv FILE)`), or a picture's "hilserl label / doctor".
SEPARATOR = re.compile(r"&&|\|\||;|\s&(?:\s|$)|\s\|(?=\s*[^\s-])|\s/\s")
FLAG = re.compile(r"(?<![\w-])--([A-Za-z][\w.-]*)")


def split_fences(text: str) -> tuple[str, list[str]]:
    """(the text outside fenced code blocks, the fenced blocks' bodies)."""
    prose: list[str] = []
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
            continue
        (prose if current is None else current).append(line)
    assert current is None, "a fenced code block is never closed"
    return "\n".join(prose), blocks


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: link text only, lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    prose, _ = split_fences(path.read_text())
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in prose.splitlines():
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def links_of(path: Path) -> list[str]:
    prose, _ = split_fences(path.read_text())
    prose = INLINE_CODE.sub("", prose)
    return LINK.findall(prose) + REF_LINK.findall(prose)


def shell_lines(block: str) -> list[str]:
    """A code block's logical lines: backslash continuations joined, comments cut off."""
    lines: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        lines.append(re.split(r"(?:^|\s)#", line, maxsplit=1)[0])
    if pending:
        lines.append(pending)
    return lines


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    """Every (command, flags) of a `hilserl <command> ...` in a piece of shell text."""
    found = []
    for match in COMMAND.finditer(text):
        rest = SEPARATOR.split(text[match.end() :], maxsplit=1)[0]
        found.append((match.group(1), FLAG.findall(rest)))
    return found


def doc_commands() -> dict[str, dict[str, set[str]]]:
    """command -> flag -> the doc files that show it (flag "" stands for the bare command)."""
    shown: dict[str, dict[str, set[str]]] = {}
    for path in DOC_FILES:
        prose, blocks = split_fences(path.read_text())
        pieces = [line for block in blocks for line in shell_lines(block)]
        pieces += [" ".join(span.split()) for span in INLINE_CODE.findall(prose)]
        for piece in pieces:
            for command, flags in commands_in(piece):
                for flag in ["", *flags]:
                    shown.setdefault(command, {}).setdefault(flag, set()).add(path.name)
    return shown


_HELP_SCRIPT = r"""
import contextlib, io, json, sys
from cluster import cli

out_path, calls = sys.argv[1], json.loads(sys.argv[2])
result = {}
for name, argv in calls.items():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:
            code = exit_.code
    result[name] = [0 if code is None else code, buffer.getvalue()]
with open(out_path, "w") as file:
    json.dump(result, file)
"""


@pytest.fixture(scope="module")
def shown() -> dict[str, dict[str, set[str]]]:
    return doc_commands()


@pytest.fixture(scope="module")
def helps(shown, tmp_path_factory) -> dict[str, tuple[int, str]]:
    """command -> (exit code, output) of its --help (or of its NO_HELP argv), one subprocess for all."""
    from cluster.cli import COMMANDS

    tmp = tmp_path_factory.mktemp("docs_help")
    (tmp / "empty").mkdir()
    calls = {}
    for name in shown:
        if name in NO_HELP:
            calls[name] = [arg.format(empty_dir=tmp / "empty") for arg in NO_HELP[name][1]]
        elif name in COMMANDS:
            calls[name] = [name, "--help"]
    out = tmp / "helps.json"
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_SCRIPT, str(out), json.dumps(calls)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: (code, text) for name, (code, text) in json.loads(out.read_text()).items()}


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    title, *rest = text.splitlines()
    assert title.startswith("# "), "README.md starts with its title"
    first = next(line for line in rest if line.strip())
    assert FENCE.match(first), "the first thing after the title is the commands block"
    _, blocks = split_fences(text)
    commands = [re.split(r"\s+#", line, maxsplit=1)[0].strip() for line in blocks[0].splitlines()]
    assert commands == FIRST_BLOCK, "the first code block is the two install commands, nothing else"


def test_readme_is_a_front_page():
    count = len(README.read_text().splitlines())
    assert count < MAX_README_LINES, f"README.md has {count} lines; move detail to docs/"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(path):
    broken = []
    for target in links_of(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors_of(dest):
            broken.append(f"{target}: no heading '{anchor}' in {os.path.relpath(dest, ROOT)}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


def test_docs_show_only_existing_commands(shown, helps):
    from cluster.cli import COMMANDS

    unknown = {name: sorted(flags[""]) for name, flags in shown.items() if name not in COMMANDS}
    assert not unknown, f"docs show commands hilserl does not have: {unknown}"
    failed = {name: helps[name] for name in shown if helps[name][0] != 0}
    assert not failed, f"--help (or the NO_HELP call) failed: {failed}"


def _listed(help_text: str) -> tuple[set[str], set[str]]:
    """(every --flag help lists, those it lists as a Dict, whose keys are free)."""
    flags = set(FLAG.findall(help_text))
    dicts = set(re.findall(r"--([A-Za-z][\w.-]*) \[?[Dd]ict\b", help_text))  # draccus 0.11 writes dict[...]
    return flags, dicts


def flag_known(flag: str, listed: set[str], dicts: set[str]) -> bool:
    if flag in listed:
        return True
    parts = flag.split(".")
    return any(".".join(parts[:i]) in dicts for i in range(1, len(parts)))


def test_docs_show_only_existing_flags(shown, helps):
    missing = []
    for name, flags in sorted(shown.items()):
        if name in NO_HELP:
            listed, dicts = NO_HELP[name][2], set()
        else:
            listed, dicts = _listed(helps[name][1])
        for flag, files in sorted(flags.items()):
            if flag and (name, flag) not in EXTRA_FLAGS and not flag_known(flag, listed, dicts):
                missing.append(f"hilserl {name} --{flag} ({', '.join(sorted(files))})")
    assert not missing, "flags the docs show that the command does not list:\n" + "\n".join(missing)


def test_extraction_sees_the_main_commands(shown):
    """Guard the parser itself: the README's day must be found, with its flags."""
    for name in ("demo", "record", "train-reward", "run"):
        assert name in shown, f"no `hilserl {name}` found in the docs"
    assert "config_path" in shown["run"]
