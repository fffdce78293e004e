"""The trainer tier's virtualenvs: which TRL takes which export, and where each env lives.

Each env is a folder in the cache outside the clone ($ROLLKIT_CACHE, else $HOME/.cache/rollkit), named
by its versions, e.g. trl-1.13.0-transformers-5.24.0-torch-2.13.0. `python tests/trainers/envs.py build`
builds what is missing (idempotent: a folder holding its stamp is left alone, a half-built one is
built again) and prints each env's folder; `python tests/trainers/envs.py paths` only prints them.
The model is the real-server tier's: <cache>/models/smollm2-135m-instruct-f32.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# torch is the CPU wheel that lies on this disk (pip's find-links); naming torch==2.13.0 in the same
# install keeps pip from resolving TRL's or accelerate's open range to a CUDA build of several GB.
TORCH_VERSION = "2.13.0"
DATASETS_VERSION = "5.2.0"
PILLOW_VERSION = "13.0.0"
MODEL_NAME = "smollm2-135m-instruct-f32"
MODEL_STAMP = ".rollkit-built.json"  # written last by the real-server tier's conversion
STAMP = ".rollkit-trainer-env.json"


@dataclass(frozen=True)
class TrainerEnv:
    trl: str
    transformers: str
    extras: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"trl-{self.trl}-transformers-{self.transformers}-torch-{TORCH_VERSION}"

    @property
    def folder(self) -> Path:
        return cache_root() / self.name

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def requirements(self) -> list[str]:
        # datasets is named because the training scripts import it themselves, not only through TRL.
        return [f"torch=={TORCH_VERSION}", f"trl=={self.trl}", f"transformers=={self.transformers}",
                f"datasets=={DATASETS_VERSION}", *self.extras]

    def built(self) -> bool:
        try:
            return json.loads((self.folder / STAMP).read_text()) == self.requirements and self.python.exists()
        except (OSError, ValueError):
            return False


# TRL 1.13 is the last with PRMTrainer (trl.experimental.prm; deleted in 1.14, huggingface/trl PR #7133).
PRM_ENV = TrainerEnv(trl="1.13.0", transformers="5.24.0")
# SFTTrainer, DPOTrainer; pillow for image rows (datasets' Image feature, the Qwen2-VL image processor)
CURRENT_ENV = TrainerEnv(trl="1.16.0", transformers="5.24.0", extras=(f"pillow=={PILLOW_VERSION}",))
ENVS = (PRM_ENV, CURRENT_ENV)
# pip's note on each file:// index that lacks a package is noise in the build log.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")


def cache_root() -> Path:
    return Path(os.environ.get("ROLLKIT_CACHE") or Path.home() / ".cache" / "rollkit")


def model_dir() -> Path:
    return cache_root() / "models" / MODEL_NAME


def model_built() -> bool:
    return (model_dir() / MODEL_STAMP).exists() and (model_dir() / "config.json").exists()


def build(env: TrainerEnv) -> float:
    """Builds `env` unless it is built; returns the seconds it took."""
    if env.built():
        return 0.0
    started = time.monotonic()
    shutil.rmtree(env.folder, ignore_errors=True)
    env.folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(env.folder)], check=True)
    pip = subprocess.run([str(env.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          *env.requirements], capture_output=True, text=True)
    noise_free = [line for line in pip.stderr.splitlines() if not _PIP_NOISE.match(line)]
    if pip.returncode != 0:
        raise SystemExit(f"pip install {' '.join(env.requirements)} failed:\n" + "\n".join(noise_free))
    subprocess.run([str(env.python), "-c", "import torch, transformers, trl"], check=True)
    (env.folder / STAMP).write_text(json.dumps(env.requirements))
    return time.monotonic() - started


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "paths"
    if what not in ("build", "paths"):
        print("usage: python tests/trainers/envs.py [build|paths]", file=sys.stderr)
        return 2
    for env in ENVS:
        seconds = build(env) if what == "build" else 0.0
        state = "built" if env.built() else "missing"
        print(f"{env.folder}\t{state}" + (f"\t{seconds:.0f} s" if seconds else ""))
    print(f"{model_dir()}\t{'built' if model_built() else 'missing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
