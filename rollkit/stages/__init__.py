"""The stages that call endpoints record by record: the loop they share and running one stage
(`runner`), rejection sampling (`rejection`), rollouts with Monte-Carlo step scores (`montecarlo`, with
the templates a rollout uses in `rollout_prompts`) and
the search over which steps to measure (`mc_search`).

May import: `net`, `store`, `content`, `answers`.
"""
