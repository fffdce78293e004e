"""The stages that call endpoints record by record: the loop they share and running one stage
(`runner`), rejection sampling (`rejection`), rollouts with Monte-Carlo step scores (`montecarlo`) and
the search over which steps to measure (`mc_search`).

May import: `net`, `store`, `content`, `answers`.
"""
