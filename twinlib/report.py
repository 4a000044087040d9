"""The evaluation's charts and its one-page report (Markdown and self-contained HTML).

:func:`plot_metric_bars` draws one bar chart per metric (a bar per model, the untrained base in
grey, "higher/lower is better" in the title, the judge's confidence interval as error bars and
its 50 % chance line). :func:`write_report` gathers ``eval/`` into ``eval/report.md`` (images
linked beside it) and ``eval/report.html`` (images embedded, no network assets: it opens
anywhere, offline, and can be mailed as one file).
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from pathlib import Path

import pandas as pd

from twinlib.evaluation import (METRICS, MODEL_ORDER, SELECTION_FILE, best_and_worst, best_model, compare_models,
                                comparison_table, load_results, metrics_table, run_best_model, verdict)
from twinlib.rundir import RunDir

COLORS = {"base": "#9e9e9e", "sft": "#4c72b0", "refined": "#55a868", "ppo": "#c44e52", "dpo": "#8172b2"}


def _figure(figsize=(4.2, 3.0)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    return fig


def _bars(ax, metrics: dict, name: str) -> None:
    info = METRICS[name]
    models = [m for m in MODEL_ORDER if m in metrics] + [m for m in metrics if m not in MODEL_ORDER]
    vals = [metrics[m].get(name) for m in models]
    vals = [float("nan") if v is None else float(v) for v in vals]
    colors = [COLORS.get(m, "#4c72b0") for m in models]
    yerr = None
    if name == "turing_judge_accuracy":
        lo = [metrics[m].get("turing_judge_ci_low") for m in models]
        hi = [metrics[m].get("turing_judge_ci_high") for m in models]
        if all(x is not None for x in lo + hi):
            yerr = [[max(v - a, 0) for v, a in zip(vals, lo)], [max(b - v, 0) for v, b in zip(vals, hi)]]
        ax.axhline(0.5, color="black", linestyle="--", linewidth=1)
        ax.text(len(models) - 0.5, 0.5, " chance", va="bottom", ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
    ax.bar(models, vals, color=colors, yerr=yerr, capsize=4)
    if name == "perplexity" and all(v > 0 for v in vals if not math.isnan(v)) and \
            max(vals) / max(min(vals), 1e-9) > 30:
        ax.set_yscale("log")
    for i, v in enumerate(vals):
        if not math.isnan(v):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom" if v >= 0 else "top", fontsize=8)
    arrow = "↑" if info.direction == "higher" else "↓"
    ax.set_title(f"{info.label} ({arrow} {info.direction} is better)", fontsize=10)


def plot_metric(metrics: dict, name: str, path=None):
    """One bar chart of ``name`` across the models; written to ``path`` (PNG) when given."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {list(METRICS)}")
    fig = _figure()
    _bars(fig.add_subplot(), metrics, name)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def plot_metric_bars(metrics: dict, out_dir=None) -> dict[str, Path]:
    """One PNG per metric in ``out_dir`` (``metric_<name>.png``); returns ``{metric: path}``."""
    out = {}
    for name in METRICS:
        if any(metrics[m].get(name) is not None for m in metrics):
            p = Path(out_dir) / f"metric_{name}.png"
            plot_metric(metrics, name, p)
            out[name] = p
    return out


def plot_metrics_grid(metrics: dict, path=None):
    """All metrics in one figure (2 × 3 bar charts), for the notebook."""
    names = [n for n in METRICS if any(metrics[m].get(n) is not None for m in metrics)]
    cols = 3
    rows = max(1, math.ceil(len(names) / cols))
    fig = _figure((4.0 * cols, 3.0 * rows))
    for i, name in enumerate(names):
        _bars(fig.add_subplot(rows, cols, i + 1), metrics, name)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


# --------------------------------------------------------------------------- report


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ⏎ ").replace("\r", " ")


class _Doc:
    """A tiny document model rendered both as Markdown and as HTML (no markdown library needed)."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def ul(self, items: list[str]):
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list[str]]):
        self.blocks.append(("table", header, rows))

    def img(self, path: Path, alt: str):
        self.blocks.append(("img", Path(path), alt))

    def markdown(self, base: Path) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "ul":
                out.append("\n".join(f"- {x}" for x in b[1]))
            elif b[0] == "table":
                head, rows = b[1], b[2]
                lines = ["| " + " | ".join(_md_escape(x) for x in head) + " |", "|" + "---|" * len(head)]
                lines += ["| " + " | ".join(_md_escape(x) for x in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif b[0] == "img":
                try:
                    rel = b[1].relative_to(base)
                except ValueError:
                    rel = b[1]
                out.append(f"![{b[2]}]({rel.as_posix()})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        parts = []
        imgs = []
        for i, b in enumerate(self.blocks):
            if b[0] == "h":
                parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                parts.append(f"<p>{html.escape(b[1]).replace('**', '')}</p>")
            elif b[0] == "ul":
                parts.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(x)}</th>" for x in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in b[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif b[0] == "img":
                if b[1].exists():
                    data = base64.b64encode(b[1].read_bytes()).decode("ascii")
                    imgs.append(f"<img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'>")
                if i + 1 == len(self.blocks) or self.blocks[i + 1][0] != "img":
                    parts.append("<div class='charts'>" + "".join(imgs) + "</div>")
                    imgs = []
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
                 "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
                 "th{background:#f3f3f3}.charts img{width:32%;min-width:280px;margin:4px}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_report(run_dir, examples: int = 2, model_for_examples: str | None = None) -> Path:
    """Write ``eval/report.md`` and ``eval/report.html`` for the run; returns the Markdown path.

    Needs :func:`twinlib.evaluation.evaluate_models`' outputs in ``eval/``. The report holds the
    metrics table (with which direction is better), one bar chart per metric, whether each
    trained model beats the untrained base, the ``examples`` best and worst replies of each
    model, a few prompt tests and the human Turing-game score when judgements were saved.
    """
    from twinlib.turing import judgement_score, load_judgements, score_text

    run = RunDir(run_dir)
    df, metrics = load_results(run.root)
    cfg = {}
    if (run.eval / "config.json").exists():
        cfg = json.loads((run.eval / "config.json").read_text(encoding="utf-8"))
    charts = plot_metric_bars(metrics, run.eval)
    table = metrics_table(metrics)
    doc = _Doc()
    doc.h(1, f"Digital twin evaluation — {run.root.resolve().name}")
    doc.p(f"Run directory `{run.root}`; {int(cfg.get('n_test', len(df) // max(len(metrics), 1)))} held-out test "
          f"conversations; models: {', '.join(table.index)}; written {time.strftime('%Y-%m-%d %H:%M')}.")
    best = run_best_model(run.root) if (run.root / SELECTION_FILE).exists() else best_model(metrics)
    if best in metrics and metrics[best].get("fidelity") is not None:
        doc.p(f"The twin is **{best}** (validation fidelity {metrics[best]['fidelity']:.3f}): sft, unless a later "
              "stage is measurably better on validation fidelity (paired 95% interval above 0); chat, the server "
              "and the Turing game use it.")
    against = [m for m in ("sft", "base") if m in metrics]
    if against and len(metrics) > 1 and "chrf" in df.columns:
        cmp = compare_models(df, metrics, against=against)
        doc.h(2, "Verdict")
        doc.ul([verdict(cmp, m, ref) for ref in against for m in metrics if m != ref])
        for ref in against:
            ct = comparison_table(cmp, ref)
            if not ct.empty:
                doc.h(3, f"Difference to {ref} (95% intervals; ↑ better, ↓ worse, ≈ no clear difference)")
                doc.table(["model"] + [METRICS[c].label if c in METRICS else c.replace("_", " ") for c in ct.columns],
                          [[m] + [str(v) for v in row] for m, row in ct.iterrows()])
    if best and metrics[best].get("turing_judge_accuracy") is not None:
        ma = metrics[best]
        doc.p(f"The automatic Turing judge tells {best}'s replies from the person's with accuracy "
              f"{ma['turing_judge_accuracy']:.0%} (95% CI {ma['turing_judge_ci_low']:.0%}–{ma['turing_judge_ci_high']:.0%}); "
              "50% would mean indistinguishable.")
    doc.h(2, "Metrics")
    header = ["model"] + [f"{METRICS[c].label} ({'↑' if METRICS[c].direction == 'higher' else '↓'})" for c in table.columns]
    with_ci = metrics_table(metrics, with_ci=True)
    doc.table(header, [[m] + [str(v) for v in row] for m, row in with_ci.iterrows()])
    doc.p("Each value with its 95% interval. Words and emoji per reply (the person: "
          + ", ".join(f"{metrics[next(iter(metrics))].get(k, float('nan')):.2f} {label}" for k, label in
                      (("real_words_per_reply", "words"), ("real_emoji_per_reply", "emoji")))
          + "): " + "; ".join(f"{m} {metrics[m].get('words_per_reply', float('nan')):.2f} / "
                              f"{metrics[m].get('emoji_per_reply', float('nan')):.2f}" for m in metrics) + ".")
    doc.ul([f"{METRICS[c].label}: {METRICS[c].description}" for c in table.columns])
    for name, p in charts.items():
        doc.img(p, METRICS[name].label)
    doc.h(2, "Best and worst replies")
    doc.p("Ranked by the semantic similarity of the model's reply to what the person really said.")
    wanted = [model_for_examples] if model_for_examples else [m for m in MODEL_ORDER if m in metrics]
    if "semantic_similarity" in df.columns:
        for m in wanted:
            b, w = best_and_worst(df, m, k=examples)
            doc.h(3, m)
            rows = [["best", r.prompt, r.real_reply, r.reply, _fmt(float(r.semantic_similarity))] for r in b.itertuples()]
            rows += [["worst", r.prompt, r.real_reply, r.reply, _fmt(float(r.semantic_similarity))] for r in w.itertuples()]
            doc.table(["", "message", "the person replied", f"{m} replied", "similarity"], rows)
    pt = run.eval / "prompt_tests.csv"
    if pt.exists():
        ptd = pd.read_csv(pt, keep_default_na=False)
        if len(ptd):
            doc.h(2, "Prompt tests")
            doc.p(f"{int(ptd['sample'].max())} sampled replies per model to the same messages (first two messages shown).")
            models = [m for m in MODEL_ORDER if m in set(ptd["model"])]
            rows = []
            for pid in sorted(set(ptd["prompt_id"]))[:2]:
                g = ptd[ptd["prompt_id"] == pid]
                rows.append([str(g.iloc[0]["prompt"])] + [" / ".join(g[g["model"] == m].sort_values("sample")["reply"].astype(str)) for m in models])
            doc.table(["message"] + models, rows)
    js = load_judgements(run.judgements) if run.judgements.exists() else []
    doc.h(2, "Human Turing test")
    if js:
        by_model = {}
        for j in js:
            by_model.setdefault(j.get("model"), []).append(j)
        doc.ul([f"{m}: {score_text(judgement_score(v))}" for m, v in by_model.items()])
    else:
        doc.p("No saved judgements: play the game in notebook 05 with turing='widget'.")
    md = run.eval / "report.md"
    md.write_text(doc.markdown(run.eval), encoding="utf-8")
    (run.eval / "report.html").write_text(doc.html(f"twin evaluation — {run.root.name}"), encoding="utf-8")
    return md
