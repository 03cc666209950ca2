"""The Dockerfile's invariants, checked by reading it: no Docker engine exists here to build it.

What must hold for the chart's pods to start under Pod Security "restricted" and for the image to
stay small: a numeric non-root USER equal to the chart's runAsUser, a final stage with no compiler,
package manager run or source tree, the `inferplane` console script as the entrypoint, and a build
context (.dockerignore) that keeps every packaged directory.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "cc ", "clang", "python3-dev", "libc6-dev")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.instructions if ins == instruction]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and instruction == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
        elif stages:
            stages[-1].instructions.append((instruction, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    _, parsed = parse_dockerfile((REPO / "Dockerfile").read_text())
    return parsed


def test_parser_reads_a_known_dockerfile() -> None:
    # The checks below are only as good as this parser: pin it on a small example.
    args, parsed = parse_dockerfile(
        "ARG BASE=python:3.11-slim\nFROM ${BASE} AS b\nRUN a \\\n  && b\n# c\nFROM ${BASE}\nUSER 1:2\n"
    )
    assert args == {"BASE": "python:3.11-slim"}
    assert [(s.base, s.name) for s in parsed] == [("python:3.11-slim", "b"), ("python:3.11-slim", None)]
    assert parsed[0].all("RUN") == ["a    && b"]
    assert parsed[1].all("USER") == ["1:2"]


def test_two_stages_on_the_same_python_as_the_project(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    builder, final = stages[0], stages[-1]
    # The venv's interpreter is a symlink into the base image: both stages need the same one.
    assert builder.base == final.base
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", final.base), final.base
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_final_stage_runs_as_the_chart_numeric_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit(), "numeric uid:gid, so the kubelet can verify runAsNonRoot"
    assert int(uid) != 0 and int(gid) != 0
    helpers = (REPO / "charts" / "inferplane" / "templates" / "_helpers.tpl").read_text()
    assert f"runAsUser: {uid}" in helpers and f"runAsGroup: {gid}" in helpers


def test_final_stage_has_no_build_tools_or_sources(stages: list[Stage]) -> None:
    final = stages[-1]
    for command in final.all("RUN"):
        assert "pip install" not in command, f"installs in the final stage: {command}"
        assert "apt-get install" not in command and "apk add" not in command, command
    for instruction, args in final.instructions:
        assert not any(tool in f"{args} " for tool in BUILD_TOOLS), f"{instruction} {args}"
    copies = final.all("COPY") + final.all("ADD")
    assert copies, "the final stage copies nothing from the builder"
    for copy in copies:
        assert copy.startswith("--from="), f"the final stage copies from the build context: {copy}"
    builder_runs = " ".join(stages[0].all("RUN"))
    assert "pip uninstall -y pip" in builder_runs, "pip itself should not ship in the venv"


def test_entrypoint_is_the_console_script(stages: list[Stage]) -> None:
    entrypoints = stages[-1].all("ENTRYPOINT")
    assert entrypoints, "no ENTRYPOINT"
    # Exec form: no shell needed (or present in the process tree) at runtime.
    command = json.loads(entrypoints[-1])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert command == ["inferplane"]
    assert "inferplane" in scripts
    assert any("PATH=/opt/venv/bin" in env for env in stages[-1].all("ENV"))


def test_dependencies_come_from_pyproject_not_a_second_list(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].all("RUN"))
    assert "tomllib" in runs and "['project']['dependencies']" in runs
    assert not list(REPO.glob("requirements*.txt")), "a requirements file would drift from pyproject.toml"


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for plain patterns: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_build_context_keeps_every_packaged_directory_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(
        p.name
        for p in REPO.iterdir()
        if (p / "__init__.py").is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in includes)
    )
    assert "inferplane" in packages
    for package in packages:
        assert not _dockerignored(f"{package}/__init__.py", patterns), (
            f"{package}/ is excluded from the image"
        )
    for needed in ("pyproject.toml", project["project"]["readme"], "instance_types/crd.yaml"):
        assert not _dockerignored(needed, patterns), needed
    for dropped in (".git/HEAD", ".venv/bin/python", "tests/unit/x.py", "charts/inferplane/Chart.yaml"):
        assert _dockerignored(dropped, patterns), dropped


def test_the_builder_checks_the_installed_command_runs(stages: list[Stage]) -> None:
    last_run = shlex.split(stages[0].all("RUN")[-1])
    assert "inferplane" in last_run and "--version" in last_run
