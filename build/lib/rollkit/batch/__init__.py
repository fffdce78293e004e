"""Step-wise verification through the OpenAI and Azure Batch APIs.

The stages, one module each:

- `requests`: one verification request per rollout (judge prompt, question, solution, image) and
  the rollout ids that become `custom_id`s;
- `pack`: cuts requests into batch input files under every limit at once (lines, bytes, tokens),
  deterministically and incrementally, with a manifest;
- `ledger`: the append-only record of everything done with a file (uploads, batches, status
  changes, downloads), folded back into state on restart;
- `service`: the Files and Batches calls, through the official `openai` SDK;
- `processor`: drives files through upload, create, poll, download and resubmission over many
  endpoints; `schedule` decides where a file goes, `submission` writes what is uploaded;
- `results`: reads output and error files (OpenAI, Azure, `vllm run-batch`, the seed's JSON);
- `verdicts`, `mapping`: the judge's verdicts, joined back onto the rollouts.
"""
