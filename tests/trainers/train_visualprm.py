"""Trains SmolLM2 with the current TRL's SFTTrainer on a `--format visualprm --chat-schema messages` export,
the images dropped (the model reads text only), with the step-token collator the seed's PRM trainer uses:
loss only on the good/bad token that opens each assistant turn.

Runs in the trainer env (current TRL): python train_visualprm.py MODEL_DIR ROWS.jsonl OUT_DIR [GOOD,BAD]
Prints one JSON line: per row the steps (assistant turns), the labelled tokens in the collator's labels,
whether those labels spell the row's own good/bad tokens in order, and how many good/bad token ids the
row holds anywhere (what a collator that unmasks every such id would train on); then the losses.
"""

import json
import sys
from dataclasses import dataclass

import torch
from datasets import Dataset, load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

model_dir, rows_path, out_dir = sys.argv[1:4]
step_tokens = (sys.argv[4] if len(sys.argv) > 4 else "+,-").split(",")
ASSISTANT_HEADER = "<|im_start|>assistant\n"  # SmolLM2's ChatML turn opening


def text_only(row: dict) -> dict:
    """Drops the image parts and joins the text parts: SmolLM2's template takes string contents."""
    messages = [{"role": m["role"], "content": "".join(part["text"] for part in m["content"]
                                                       if part["type"] == "text")
                 if isinstance(m["content"], list) else m["content"]} for m in row["messages"]]
    return {"messages": messages}


@dataclass
class StepTokenCollator:
    """TRL's collator, then every label masked but a step token that opens an assistant turn."""

    base: DataCollatorForLanguageModeling
    header: list[int]
    step_ids: set[int]

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.base(examples)
        ids, labels = batch["input_ids"], torch.full_like(batch["input_ids"], -100)
        width = len(self.header)
        for row in range(ids.shape[0]):
            for pos in range(width, ids.shape[1]):
                if int(ids[row, pos]) in self.step_ids and ids[row, pos - width:pos].tolist() == self.header:
                    labels[row, pos] = ids[row, pos]
        batch["labels"] = labels
        return batch


# Built anew, not by .map: map keeps the loaded column's type (content parts) for the new string contents.
rows = Dataset.from_list([text_only(row) for row in load_dataset("json", data_files=rows_path, split="train")])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
if tokenizer.add_tokens([t for t in step_tokens if t not in tokenizer.get_vocab()]):
    model.resize_token_embeddings(len(tokenizer))  # the custom-token variant (<+>/<->)
step_ids = [tokenizer.encode(t, add_special_tokens=False) for t in step_tokens]
assert all(len(ids) == 1 for ids in step_ids), f"step tokens are not single tokens: {step_ids}"
step_ids = [ids[0] for ids in step_ids]
pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
collator = StepTokenCollator(DataCollatorForLanguageModeling(pad_token_id=pad_id),
                             tokenizer.encode(ASSISTANT_HEADER, add_special_tokens=False), set(step_ids))
config = SFTConfig(output_dir=out_dir, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-4,
                   max_length=None, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                   seed=0, dataloader_num_workers=0)
trainer = SFTTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer,
                     data_collator=collator)
report = []
for raw, tokenized in zip(rows, trainer.train_dataset, strict=True):
    labels = collator([tokenized])["labels"][0]
    labelled = labels[labels != -100].tolist()
    wanted = [tokenizer.encode(m["content"], add_special_tokens=False) for m in raw["messages"]
              if m["role"] == "assistant"]
    report.append({"steps": len(wanted), "labelled_tokens": len(labelled),
                   "labels_match": labelled == [ids[0] for ids in wanted if len(ids) == 1],
                   "step_token_ids_anywhere": sum(int(t) in step_ids for t in tokenized["input_ids"])})
trainer.train()
print(json.dumps({
    "rows": report,
    "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
    "optimizer_steps": trainer.state.global_step,
}))
