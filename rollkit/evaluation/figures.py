"""The evaluation's figures (PNG, matplotlib Agg) and its table, as an HTML section that both
`rollkit evaluate`'s own page and report.py's page show."""

from __future__ import annotations

import html
from pathlib import Path

from rollkit.report.figures import _empty, _save, plt
from rollkit.report.page import _table

ACCURACY_PNG = "prm_accuracy_vs_n.png"
STEP_PNG = "prm_step_level.png"


def accuracy_vs_n(curves: dict, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ns = curves.get("n") or []
    pickers = [k for k in curves if isinstance(curves[k], list) and k != "n"]
    if not ns:
        _empty(ax, "no question with candidates")
    for name in pickers:
        style = "--" if name in ("random", "oracle") else "-"
        ax.plot(ns, curves[name], style, marker="o", label=name)
    if ns:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8, ncol=2)
    ax.set_xlabel("N (candidates seen)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Best-of-N over {curves.get('questions', 0)} questions")
    return _save(fig, out / ACCURACY_PNG)


def step_level(result: dict, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    scorers = result.get("scorers") or {}
    if not scorers:
        _empty(ax, "no solution with a reference first error")
    names = list(scorers)
    width = 0.27
    for k, (key, label) in enumerate((("erroneous_accuracy", "erroneous"), ("correct_accuracy", "correct"),
                                      ("f1", "F1"))):
        values = [scorers[n][key] or 0.0 for n in names]
        ax.bar([i + (k - 1) * width for i in range(len(names))], values, width, label=label)
    if names:
        ax.set_xticks(range(len(names)), names)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    ax.set_title(f"First wrong step against the {result.get('reference', '?')} reference")
    return _save(fig, out / STEP_PNG)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def section(summary: dict) -> str:
    """The HTML of the evaluation: both figures and both tables."""
    curves, steps = summary["best_of_n"], summary["step_level"]
    pickers = [k for k in curves if isinstance(curves[k], list) and k != "n"]
    rows = [[name, *(_pct(v) for v in curves[name])] for name in pickers]
    step_rows = [[name, _pct(m["erroneous_accuracy"]), _pct(m["correct_accuracy"]), _pct(m["f1"]), m["erroneous"],
                  m["correct"]] for name, m in steps["scorers"].items()]
    return "".join([
        "<h2>PRM: best-of-N accuracy against N</h2>",
        f"<img src='{html.escape(summary['figures']['best_of_n'])}' alt='accuracy against N'>",
        _table(["picker (accuracy %)", *(f"N={n}" for n in curves["n"])], rows),
        f"<p>{curves['questions']} questions; PRM scores for {curves['questions_scored']['prm']}, judge scores "
        f"for {curves['questions_scored']['judge']}.</p>",
        f"<h2>PRM: first wrong step (ProcessBench form, reference: {html.escape(steps['reference'])})</h2>",
        f"<img src='{html.escape(summary['figures']['step_level'])}' alt='step level'>",
        _table(["scorer", "erroneous acc. %", "correct acc. %", "F1 %", "erroneous", "correct"], step_rows),
        f"<p>{steps['solutions']} solutions read.</p>",
    ])
