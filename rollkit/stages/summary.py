"""What a stage tells the user at its end: the summary printed to stderr (the same figures go to
`<output>.summary.json`), and the check that a run wrote something useful at all."""

from __future__ import annotations

import sys

from rollkit.net.client import RequestStats


class NothingUseful(RuntimeError):
    """Every record this run tried failed and none was done before: exit 1, never a quiet 0."""


def check_useful(summary: dict) -> None:
    """Raise NothingUseful when the output holds no record at all, this run's or an earlier one's."""
    c = summary["records"]
    if summary.get("output_records", 1) == 0 and c["seen"] > 0:
        top = sorted(c["failures"].items(), key=lambda kv: -kv[1])[:3]
        reasons = ", ".join(f"{reason} {count}" for reason, count in top) or "failed in an earlier run"
        raise NothingUseful(f"no record done: {c['failed']} failed ({reasons}), {c['bad_input']} bad input, "
                            f"{c['already_done']} failed before; each one's reason is in {summary['errors']} "
                            "(--retry-failed asks again)")


def print_summary(summary: dict, stream=sys.stderr) -> None:
    """A short human summary; the same figures go to `<output>.summary.json` for scripts."""
    c, r = summary["records"], summary["requests"]
    minutes = max(summary["elapsed_seconds"], 1e-9) / 60
    tokens = r["prompt_tokens"] + r["completion_tokens"]
    failures = ", ".join(f"{k} {v}" for k, v in sorted(c["failures"].items())) or "none"
    lines = [
        f"{summary['stage']} summary",
        f"  records   {c['seen']} read: {c['written']} written ({c['incomplete']} incomplete), "
        f"{c['already_done']} already done, {c['duplicates']} duplicates, {c['bad_input']} bad input, "
        f"{c['failed']} failed" + (f"; {c['truncated']} cut off at the token budget" if c.get("truncated") else ""),
        f"  failures  {failures}",
        *accuracy_lines(c),
        f"  requests  {r['sent']} sent, {r['replayed']} replayed from the journal, {r['rate_limited']} "
        f"answered 429 ({r.get('share_429', 0):.1%}), {r['retries']} retries, {r['failed']} failed",
        *cut_off_lines(r),
        f"  tokens    {r['prompt_tokens']:,} prompt ({r.get('cached_tokens', 0):,} cached), "
        f"{r['completion_tokens']:,} completion ({r.get('reasoning_tokens', 0):,} reasoning)",
        *answer_lines(r),
        *endpoint_lines(summary.get("endpoints") or {}),
        f"  elapsed   {summary['elapsed_seconds']:.1f} s, {r['sent'] / minutes:,.0f} requests/min, "
        f"{tokens / minutes:,.0f} tokens/min",
        f"  output    {summary['output']}",
        f"  errors    {summary['errors']}",
    ]
    print("\n".join(lines), file=stream, flush=True)


def cut_off_lines(requests: dict) -> list[str]:
    """Requests our timeout cut off after the server took them, and what was done about them."""
    if not requests.get("cut_off"):
        return []
    return [f"  cut off   {requests['cut_off']} requests by --request-timeout (possibly billed), "
            f"{requests.get('resent_after_cut_off', 0)} of them sent again"]


def answer_lines(r: dict) -> list[str]:
    """The cost at list prices (when the models' prices are known), and what became of answers."""
    lines = []
    if r.get("cost_usd"):
        lines.append(f"  cost      ${r['cost_usd']:,.4f} at list prices (${r.get('reasoning_cost_usd', 0):,.4f} of it "
                     "hidden reasoning)")
    if r.get("truncated") or r.get("n_ignored"):
        lines.append(f"  answers   {r.get('truncated', 0)} cut off at the token budget (kept, finish_reason length); "
                     f"{r.get('n_ignored', 0)} asked one a request because the server ignored n")
    return lines


def share_429(stats: RequestStats) -> float:
    return stats.rate_limited / stats.sent if stats.sent else 0.0


def endpoint_lines(roles: dict) -> list[str]:
    """One line per endpoint: its 429 share and the limits it was paced at, with where each came from."""
    lines = []
    for role, endpoints in roles.items():
        for name, e in endpoints.items():
            paced = ", ".join(_paced(e["paced_at"][unit], label) for unit, label in (("requests", "rpm"),
                                                                                    ("tokens", "tpm")))
            lines.append(f"  endpoint  {role}/{name}: {e['sent']} sent, {e['rate_limited']} answered 429 "
                         f"({e['share_429']:.1%}); paced at {paced}")
    return lines


def _paced(meter: dict, label: str) -> str:
    if meter["per_minute"] is None:
        return f"{label} unmetered"
    return f"{meter['per_minute']:,.0f} {label} ({meter['source']}, burst {meter['burst']:,.0f})"


def accuracy_lines(c: dict) -> list[str]:
    """How many of this run's records reached the reference answer (rollouts: `is_correct`)."""
    if not c.get("checked"):
        return []
    return [f"  accuracy  {c['right']} of {c['checked']} reached the reference answer "
            f"({c['right'] / c['checked']:.1%}) under this run's answer checking"]
