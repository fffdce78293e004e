"""Trains a small Qwen2-VL with the current TRL's SFTTrainer on a `--format visualprm --chat-schema messages`
Parquet export loaded as the seed's sft_qwen.py loads it (`load_dataset(EXPORT_FOLDER)`), images kept, through
a collator that does what the seed's does: the row's `image` into the first user turn's
`{"type": "image", "text": "<image>"}` item, the chat template applied, the processor given text and image,
the loss on the step tokens (here only those opening an assistant turn: the seed's unmasks every such id).

No image-reading model can be fetched here, so the model is built from transformers' own Qwen2-VL classes:
its vision tower and language model tiny and randomly initialised, its tokenizer SmolLM2's (the tier's
model) with Qwen-VL's vision tokens added, its processor transformers' Qwen2-VL image processor. It
checks the image path end to end (row -> PIL image -> pixel values -> vision tokens -> loss), not what a
trained model makes of the image.

Runs in the trainer env (current TRL): python train_visualprm_images.py TOKENIZER_DIR EXPORT_FOLDER OUT_DIR
Prints one JSON line: per row the steps, the labelled tokens, whether they spell the row's own step tokens,
the images the collator handed to the processor, the image-pad tokens against the image grid; then how
many of the vision tower's weights the 2 steps moved, and the losses.
"""

import copy
import json
import sys
from dataclasses import dataclass

import torch
from datasets import load_dataset
from PIL import Image
from transformers import (
    AutoTokenizer,
    ProcessorMixin,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
)
from trl import SFTConfig, SFTTrainer

tokenizer_dir, folder, out_dir = sys.argv[1:4]
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
ASSISTANT_HEADER = "<|im_start|>assistant\n"
# Qwen2-VL's chat template in the tier's words: an image item becomes one vision block
TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
            "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
            "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
            "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ item['text'] }}{% endif %}{% endfor %}"
            "{% endif %}<|im_end|>\n{% endfor %}")
GOOD, BAD = "+", "-"


def put_image(messages: list[dict], image: Image.Image) -> list[dict]:
    """The row's image into the first user turn's `<image>` item, as the seed's collator does."""
    messages = copy.deepcopy(messages)
    for message in messages:
        if message["role"] != "user":
            continue
        for item in message["content"]:
            if item.get("type") == "image" and item.get("text") == "<image>":
                item["image"] = image
                return messages
    return messages


def images_of(messages: list[dict]) -> list[Image.Image]:
    return [item["image"].convert("RGB") for m in messages for item in m["content"]
            if isinstance(m["content"], list) and item.get("type") == "image" and "image" in item]


@dataclass
class SeedLikeCollator:
    processor: Qwen2VLProcessor
    header: list[int]
    step_ids: set[int]

    def __call__(self, examples: list[dict]) -> dict:
        filled = [put_image(example["messages"], example["image"]) for example in examples]
        texts = [self.processor.apply_chat_template(m, tokenize=False, add_generation_prompt=False) for m in filled]
        images = [images_of(m) for m in filled]
        batch = self.processor(text=texts, images=images, return_tensors="pt", padding=True)
        ids, labels = batch["input_ids"], torch.full_like(batch["input_ids"], -100)
        width = len(self.header)
        for row in range(ids.shape[0]):
            for pos in range(width, ids.shape[1]):
                if int(ids[row, pos]) in self.step_ids and ids[row, pos - width:pos].tolist() == self.header:
                    labels[row, pos] = ids[row, pos]
        batch["labels"] = labels
        batch["images_per_row"] = [len(row) for row in images]  # popped before the model sees the batch
        return batch


def tiny_qwen2_vl(tokenizer) -> Qwen2VLForConditionalGeneration:
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    text = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            # head size 16: its 8 rotary frequencies split over time, height and width
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3}
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    return Qwen2VLForConditionalGeneration(config)


class ImageOnlyProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without its video processor: transformers' video processors need torchvision,
    whose PyPI build is linked against CUDA torch and does not load beside the CPU torch the tier uses."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


class ImageSFTTrainer(SFTTrainer):
    def compute_loss(self, model, inputs, *args, **kwargs):
        inputs.pop("images_per_row", None)
        return super().compute_loss(model, inputs, *args, **kwargs)


tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
tokenizer.add_tokens(VISION_TOKENS, special_tokens=True)
# small images keep a CPU step short: at most 64 vision tokens an image
image_processor = Qwen2VLImageProcessor(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28)
processor = ImageOnlyProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=TEMPLATE)
model = tiny_qwen2_vl(tokenizer)
rows = load_dataset(folder, split="train")
step_ids = [tokenizer.encode(t, add_special_tokens=False) for t in (GOOD, BAD)]
assert all(len(ids) == 1 for ids in step_ids), f"step tokens are not single tokens: {step_ids}"
step_ids = [ids[0] for ids in step_ids]
collator = SeedLikeCollator(processor, tokenizer.encode(ASSISTANT_HEADER, add_special_tokens=False), set(step_ids))

report = []
pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
for row in rows:
    batch = collator([row])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    labelled = labels[labels != -100].tolist()
    wanted = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
    grid = batch["image_grid_thw"]
    report.append({"steps": len(wanted), "labelled_tokens": len(labelled),
                   "labels_match": labelled == [step_ids[0] if t == GOOD else step_ids[1] for t in wanted],
                   "image_is_pil": isinstance(row["image"], Image.Image),
                   "images_to_processor": batch["images_per_row"][0], "grids": len(grid),
                   "image_pads_match_grid": int((ids == pad).sum()) == int(grid.prod(dim=1).sum()) // 4,
                   "pixel_rows": int(batch["pixel_values"].shape[0])})

config = SFTConfig(output_dir=out_dir, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
                   max_length=None, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=0,
                   dataloader_num_workers=0, remove_unused_columns=False,
                   dataset_kwargs={"skip_prepare_dataset": True})  # as sft_qwen.py: the collator does it all
# the processor, not its tokenizer as sft_qwen.py passes under TRL 0.19: TRL 1.16 refuses image rows otherwise
trainer = ImageSFTTrainer(model=model, args=config, train_dataset=rows, processing_class=processor,
                          data_collator=collator)
vision_before = {n: p.detach().clone() for n, p in model.named_parameters() if "visual" in n}
trainer.train()
print(json.dumps({
    "rows": report,
    # the loss reached the vision tower through the image's tokens: its weights moved
    "vision_weights_changed": sum(not torch.equal(p, vision_before[n]) for n, p in model.named_parameters()
                                  if n in vision_before),
    "vision_weights": len(vision_before),
    "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
    "optimizer_steps": trainer.state.global_step,
}))
