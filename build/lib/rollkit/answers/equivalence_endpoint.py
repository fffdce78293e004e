"""`llm_judge` for Monte-Carlo continuations: a judge endpoint decides whether an answer means the
same as the reference (`rollkit.answers.check_answer_async` asks it only when no rule matched).

Each question is one request (`judge_answer` template, temperature 0, no image: the answers are
short texts), sent through the stage's `ChatClient`, so every verdict is journaled like any paid
call and a restarted run replays it. `check_answer_async` caches verdicts per (answer, reference,
question) and shares one call between continuations that reach the same answer at once. A reply
without a readable `<same>yes|no</same>` is an error, never a "no": the rollout fails with a reason.
"""

from __future__ import annotations

import re

from rollkit.net.client import ChatClient
from rollkit.prompts import render

JUDGE_MAX_TOKENS = 16
_VERDICT = re.compile(r"<same>\s*(yes|no)\s*</same>", re.IGNORECASE)


class JudgeFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def judge_body(model: str, candidate: str, reference: str, question: str | None) -> dict:
    prompt = render("judge_answer", question=question or "", reference=reference, candidate=candidate)
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": JUDGE_MAX_TOKENS}


def read_verdict(text: str | None) -> int | None:
    """1 for yes, 0 for no, None when the reply does not say."""
    found = _VERDICT.findall(text or "")
    return None if not found else int(found[-1].lower() == "yes")


def endpoint_judge(client: ChatClient, model: str):
    """A `JudgeFn` for `set_llm_judge` that asks `model` through `client`."""
    async def judge(candidate: str, reference: str, question: str | None) -> int:
        result = await client.complete(judge_body(model, candidate, reference, question))
        if not result.ok:
            raise JudgeFailed(result.reason or "failed", f"answer judge: {result.message}")
        verdict = read_verdict(result.text)
        if verdict is None:
            raise JudgeFailed("judge_unreadable", f"answer judge: no <same>yes|no</same> in {result.text[:80]!r}")
        return verdict
    return judge
