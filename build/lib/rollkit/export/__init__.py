"""Labelled rollouts to training rows: label policies, row formats, splits, writers.

`view` reads a rollout or verified rollout of any schema version into one shape; `labels` turns
it into step labels under a policy; `formats` builds the rows; `split` assigns splits and drops
duplicates; `writer` writes JSONL or Parquet; `run` streams it all and counts what it dropped.
"""
