"""How good a PRM is: best-of-N accuracy against N (`bestofn`), finding the first wrong step in
ProcessBench's form (`processbench`), and their figures, table and JSON summary (`figures`, `summary`).

May import: `content`, `answers`, `export.view` and `export.labels` (the rollout reader and label
policies give the reference first errors), `report` (the page's table helper), `store`, and `stages.prm` for its aggregates.
"""
