"""index.html: what was read, what could not be used, the figures, and the cost table."""

from __future__ import annotations

import html
from pathlib import Path

from rollkit.net.pricing import model_price
from rollkit.report.collect import StageCost, Tallies
from rollkit.store.atomic import atomic_write

_STYLE = """body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}
.warn{color:#a40}"""


def stage_cost(stage: StageCost) -> float | None:
    """Dollars at the config's --price-in/--price-out, else the model's list price; None if unknown."""
    known = model_price(stage.model or "")
    price_in = stage.price[0] if stage.price[0] is not None else known[0]
    price_out = stage.price[1] if stage.price[1] is not None else known[1]
    if price_in is None or price_out is None:
        return None
    r = stage.requests
    return (r.get("prompt_tokens", 0) * price_in + r.get("completion_tokens", 0) * price_out) / 1e6


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _costs(t: Tallies) -> str:
    rows = []
    for s in t.stages:
        cost = stage_cost(s)
        r = s.requests
        rows.append([s.stage, s.source, s.model or "?", r.get("sent", 0), r.get("replayed", 0),
                     r.get("rate_limited", 0), f"{r.get('prompt_tokens', 0):,}", f"{r.get('completion_tokens', 0):,}",
                     "unknown price" if cost is None else f"${cost:,.2f}"])
    return _table(["stage", "summary", "model", "requests", "replayed", "429s", "prompt tokens",
                   "completion tokens", "estimated cost"], rows) if rows else "<p>No stage summary was given.</p>"


def write_page(t: Tallies, figures: dict[str, str], out: Path, inputs: list[str], examples: str,
               extra: str = "") -> Path:
    """`extra`: more sections (HTML) after the others: `rollkit evaluate`'s, when it wrote into `out`."""
    read = [[kind, n] for kind, n in sorted(t.records.items())]
    read += [["unreadable lines", t.bad_lines], ["rollouts seen twice (counted once)", t.repeats]]
    files = [[kind, n] for kind, n in sorted(t.files.items())]
    unusable = "".join(f"<li>{html.escape(u)}</li>" for u in t.unusable) or "<li>nothing</li>"
    kept = [[name, c["kept"], sum(c.values()) - c["kept"],
             ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "kept") or "-"] for name, c in t.kept.items()]
    sections = [
        "<h1>rollkit run report</h1>",
        f"<p>Inputs: {html.escape(', '.join(inputs))}</p>",
        f"<p><a href='{html.escape(examples)}'>Examples</a>: rollouts where Monte-Carlo and the judge disagree, "
        "then a sample of the others, with their images and scored steps.</p>",
        "<h2>What was read</h2>", _table(["records", "count"], read), _table(["files", "count"], files),
        f"<h2>What could not be used</h2><ul class='warn'>{unusable}</ul>",
        "<h2>Step scores by position</h2>", f"<img src='{figures['step_scores']}' alt='step scores'>",
        "<h2>Right answers per dataset</h2>", f"<img src='{figures['right_answers']}' alt='right answers'>",
        "<h2>Monte-Carlo vs judge</h2>", f"<img src='{figures['agreement']}' alt='agreement matrix'>",
        "<h2>Label policies</h2>", f"<img src='{figures['policies']}' alt='label policies'>",
        _table(["policy", "kept", "dropped", "why"], kept),
        "<h2>Requests, 429s, tokens and cost per stage</h2>", f"<img src='{figures['requests']}' alt='requests'>",
        _costs(t),
        extra,
    ]
    page = out / "index.html"
    with atomic_write(page) as handle:
        handle.write(f"<!doctype html><html><head><meta charset='utf-8'><title>rollkit report</title>"
                     f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
    return page
