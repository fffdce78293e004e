"""The stages that call endpoints record by record: the loop they share and running one stage
(`runner`), rejection sampling (`rejection`), rollouts with Monte-Carlo step scores (`montecarlo`, with
the templates a rollout uses in `rollout_prompts`) and
the search over which steps to measure (`mc_search`).

The PRM stage (`prm`, `prm_conversation`, `prm_logprobs`) scores steps with a served generative PRM.

May import: `net`, `store`, `content`, `answers`; and `prm_conversation` also `export.visualprm`,
`export.view` and `batch.verify_requests.judge_question`: the PRM is asked the very conversation
the export trained it on, built by the export's own code, not a copy.
"""
