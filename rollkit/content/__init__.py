"""What goes into a request: input datasets (`inputs`, read as they come by `readers`, `jsonlist`,
`tables`, with embedded images written out by `embedded` and fields mapped by `fields`), one
record's checks and ids (`records`), rollout files and the
question in each (`rollouts`), images as data URLs (`images`), chat messages (`messages`), token
estimates (`tokens`), and structured solutions and their steps (`steps`). The templates themselves
are text files in `rollkit/prompts/`.

May import: `store`, `rollkit.prompts`.
"""
