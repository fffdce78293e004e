"""What goes into a request: input datasets and ids (`inputs`, `jsonlist`), images as data URLs
(`images`), chat messages (`messages`), token estimates (`tokens`), structured solutions and their
steps (`steps`), and which prompt templates a rollout uses (`rollout_prompts`; the templates are
text files in `rollkit/prompts/`).

May import: `store`, `rollkit.prompts`.
"""
