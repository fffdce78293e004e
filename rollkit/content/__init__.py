"""What goes into a request: input datasets and ids (`inputs`, `jsonlist`), rollout files and the
question in each (`rollouts`), images as data URLs (`images`), chat messages (`messages`), token
estimates (`tokens`), and structured solutions and their steps (`steps`). The templates themselves
are text files in `rollkit/prompts/`.

May import: `store`, `rollkit.prompts`.
"""
