"""The report's figures as PNG files (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from rollkit.report.collect import MAX_POSITION, SCORE_BINS, Tallies  # noqa: E402

DPI = 100


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})  # no version stamp: same tallies, same bytes
    plt.close(fig)
    return path.name


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def step_scores(t: Tallies, out: Path) -> str:
    """Share of measured steps at each position falling in each score bin (columns sum to 1)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    positions = sorted(t.score_hist)
    if not positions:
        _empty(ax, "no measured step scores")
    else:
        grid = [[t.score_hist.get(p, [0] * SCORE_BINS)[b] / max(1, sum(t.score_hist.get(p, [0])))
                 for p in range(positions[-1] + 1)] for b in range(SCORE_BINS)]
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          extent=(0.5, positions[-1] + 1.5, 0, 1))
        fig.colorbar(image, ax=ax, label="share of the position's steps")
        ax.set_xlabel(f"step position (last = {MAX_POSITION}+)" if positions[-1] == MAX_POSITION - 1
                      else "step position")
        ax.set_ylabel("Monte-Carlo score")
    ax.set_title("Step scores by position (measured steps)")
    return _save(fig, out / "step_scores.png")


def right_answers(t: Tallies, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(max(6, 1 + len(t.rollouts)), 3.5))
    names = sorted(t.rollouts)
    if not names:
        _empty(ax, "no rollouts")
    else:
        shares = [t.right[n] / t.rollouts[n] for n in names]
        bars = ax.bar(names, shares, color="#4c72b0")
        ax.bar_label(bars, labels=[f"{t.right[n]}/{t.rollouts[n]}" for n in names])
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("share reaching the right answer")
    ax.set_title("Rollouts reaching the right answer, per dataset")
    return _save(fig, out / "right_answers.png")


def _order(labels: set[str], first: str, last: str) -> list[str]:
    numbers = sorted((label for label in labels if label not in (first, last)),
                     key=lambda x: int(x.rstrip("+")))
    return [label for label in (first, *numbers, last) if label in labels]


def agreement(t: Tallies, out: Path) -> str:
    """Rollouts by Monte-Carlo first error (rows) and the judge's (columns); the diagonal agrees."""
    fig, ax = plt.subplots(figsize=(7, 5.5))
    if not t.agreement:
        _empty(ax, "no rollout has both Monte-Carlo scores and a verdict")
        ax.set_title("Monte-Carlo vs judge: where the first error is")
    else:
        # one set of step positions on both axes, so agreement is the diagonal
        steps = _order({label for pair in t.agreement for label in pair} - {"none", "Correct", "unknown"}, "", "")
        rows, cols = ["none", *steps], ["Correct", *steps, "unknown"]
        grid = [[t.agreement[(r, c)] for c in cols] for r in rows]
        ax.imshow(grid, cmap="Blues")
        for i, row in enumerate(grid):
            for j, count in enumerate(row):
                if count:
                    ax.text(j, i, str(count), ha="center", va="center",
                            color="white" if count > max(map(max, grid)) / 2 else "black")
        ax.set_xticks(range(len(cols)), cols)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("judge: Correct, or first incorrect step (1-based)")
        ax.set_ylabel("Monte-Carlo first zero-score step (none = sound)")
        agree = t.agreement[("none", "Correct")] + sum(t.agreement[(s, s)] for s in steps)
        ax.set_title(f"Monte-Carlo vs judge: where the first error is\n(agree on {agree} of "
                     f"{sum(t.agreement.values())}: the diagonal)")
    return _save(fig, out / "agreement.png")


def policies(t: Tallies, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = list(t.kept)
    if not names:
        _empty(ax, "no rollouts")
    else:
        kept = [t.kept[n]["kept"] for n in names]
        total = [sum(t.kept[n].values()) for n in names]
        ax.barh(names, total, color="#dddddd", label="read")
        bars = ax.barh(names, kept, color="#55a868", label="kept")
        ax.bar_label(bars, labels=[f"{k}/{n}" for k, n in zip(kept, total, strict=True)])
        ax.invert_yaxis()
        ax.set_xlim(0, max(total) * 1.2)
        ax.set_xlabel("rollouts")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Rollouts each label policy keeps")
    return _save(fig, out / "policies.png")


def requests(t: Tallies, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(t.stages) + 2), 3.5))
    if not t.stages:
        _empty(ax, "no summary.json with request counters")
    else:
        names = [f"{s.stage}\n{Path(s.source).name.removesuffix('.summary.json')}" for s in t.stages]
        sent = [s.requests.get("sent", 0) for s in t.stages]
        limited = [s.requests.get("rate_limited", 0) for s in t.stages]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], sent, width=0.4, label="sent")
        ax.bar([i + 0.2 for i in x], limited, width=0.4, label="answered 429")
        ax.set_xticks(list(x), names, fontsize=8)
        ax.set_ylabel("requests")
        ax.legend()
    ax.set_title("Requests and 429s per stage")
    return _save(fig, out / "requests.png")


def draw_all(t: Tallies, out: Path) -> dict[str, str]:
    return {"step_scores": step_scores(t, out), "right_answers": right_answers(t, out),
            "agreement": agreement(t, out), "policies": policies(t, out), "requests": requests(t, out)}
