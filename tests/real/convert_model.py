"""Convert SmolLM2-135M-Instruct's Q4_1 GGUF to a float32 safetensors folder vLLM can serve.

Runs inside the vLLM venv (it has torch and transformers; the build adds gguf and accelerate).
transformers 5 refuses save_pretrained on a GGUF-loaded model, so a plain LlamaForCausalLM is built
from its config and the dequantized weights are copied in. The GGUF's chat template is kept.
Usage: python convert_model.py GGUF_FILE OUT_DIR
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gguf  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402


def gguf_chat_template(gguf_path: Path) -> str:
    field = gguf.GGUFReader(gguf_path).fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode()


def convert(gguf_path: Path, out_dir: Path) -> None:
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    config["torch_dtype"] = "float32"
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model = model.to(torch.float32).eval()
    template = gguf_chat_template(gguf_path)
    if tokenizer.chat_template != template:
        tokenizer.chat_template = template
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    check_greedy(out_dir)


def check_greedy(out_dir: Path) -> None:
    """The saved folder must load on its own and still know the capital of France."""
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"greedy check: {answer!r}")
    if "Paris" not in answer:
        raise SystemExit(f"converted model failed the greedy check: {answer!r}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python convert_model.py GGUF_FILE OUT_DIR")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
