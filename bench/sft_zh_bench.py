"""Does supervised fine-tuning learn the Chinese persona's style and context habits?

    python bench/sft_zh_bench.py [--run-dir runs/zh-sft] [--steps 300 1200] [--no-budget] [--set KEY=VALUE ...]

Runs stage 1 on the Chinese sample (``data/sample-zh``: read, anonymize, pairs, splits) into a run
directory, then trains the tiny model with SFT as stage 2 does by default (the ``tiny`` profile's
epochs, early stopping and time budget; ``--steps`` adds runs of fixed lengths, without early stopping
or budget), each from the same untrained base, and for the base and every trained model samples one
reply to each held-out (test split) message. It prints, per model, side by side:

* habit accuracy: :func:`twinlib.sample_data.persona_habit_accuracy` with the persona's
  :data:`twinlib.sample_data_zh.HABITS_ZH` over every test message that calls for a habit ("A还是B？",
  a proposed day, a good night), with its 95% Wilson interval, and per habit;
* style: the mean :func:`twinlib.sample_data_zh.persona_style_score` of the replies to the other
  test messages, next to that of the persona's real replies to them, and the style distance
  (:func:`twinlib.style.style_distance` of :func:`twinlib.style.style_features`, 0 = the same style)
  of all replies to the real ones;
* exact: the share of replies equal to the real one.

Generation: the profile's settings (as stage 5: its sampling and its prompt window), one sample per
message, seed 0. Times are wall-clock on this machine. ``--no-budget`` trains without the profile's
time budget, so that a busy machine does not cut training short (the result then depends on the
data and the seed only). ``--set`` changes a setting of the tiny profile for the whole run (for
example ``--set tiny_vocab_size=2000``; use a fresh ``--run-dir``, as the base model and its tokenizer
are made once per run directory).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stage1(run: Path) -> None:
    from twinlib.data import find_exports, read_exports
    from twinlib.pairs import build_pairs, save_pairs, split_pairs
    from twinlib.privacy import ME, Anonymizer

    messages = read_exports(find_exports([ROOT / "data" / "sample-zh"]))
    anon = Anonymizer.from_messages(messages, me="Me")
    save_pairs(split_pairs(build_pairs(anon.anonymize(messages), me=ME), seed=0), run)


def replies(model_dir: Path, rows, profile) -> list[str]:
    from twinlib.generation import generate_replies, settings_for
    from twinlib.modeling import load_model

    model, tok = load_model(str(model_dir))
    convs = [(r.context, r.prompt) for r in rows.itertuples()]
    out = generate_replies(model, tok, convs, n=1, settings=settings_for(profile), seed=0,
                           max_prompt_tokens=profile.max_prompt_tokens)
    return [o[0] if o else "" for o in out]


def measure(name: str, got: list[str], rows) -> dict:
    from twinlib.sample_data import habit_of, persona_habit_accuracy
    from twinlib.sample_data_zh import HABITS_ZH, persona_style_score
    from twinlib.style import style_distance, style_features

    prompts, real = list(rows["prompt"]), list(rows["response"])
    habit = persona_habit_accuracy(prompts, got, HABITS_ZH)
    other = [i for i, p in enumerate(prompts) if habit_of(p, HABITS_ZH) is None]
    style = sum(persona_style_score(got[i]) for i in other) / max(len(other), 1)
    real_style = sum(persona_style_score(real[i]) for i in other) / max(len(other), 1)
    exact = sum(g.strip() == r.strip() for g, r in zip(got, real)) / len(real)
    distance = style_distance(style_features(got), style_features(real))
    return {"model": name, "habit": habit, "style": style, "real_style": real_style, "exact": exact,
            "style_distance": distance,
            "examples": [(prompts[i], got[i]) for i in range(0, len(prompts), max(1, len(prompts) // 6))][:6]}


def train(run: Path, profile, steps: int | None, budget: bool = True, seed: int = 0) -> tuple[str, dict, float]:
    """SFT from the run's base into ``models/sft-<name>``: the profile's defaults (``steps`` None; without
    its time budget when ``budget`` is false) or exactly ``steps`` steps. Returns the name, the training
    metrics and the seconds it took."""
    from twinlib.sft import train_sft

    name = "default" if steps is None else f"{steps}-steps"
    fixed = {} if steps is None else {"max_steps": steps, "patience": 0, "time_budget_min": 0}
    if not budget:
        fixed["time_budget_min"] = 0
    t0 = time.time()
    metrics = train_sft(run, profile, overwrite=True, seed=seed, progress=False, **fixed)
    seconds = time.time() - t0
    kept = run / "models" / f"sft-{name}"
    if kept.exists():
        shutil.rmtree(kept)
    shutil.copytree(run / "models" / "sft", kept)
    print(f"sft {name}: {seconds:.0f} s, {metrics['steps']} steps ({metrics['epochs']} epochs), "
          f"stopped by {metrics['stop_reason']}, best validation loss {metrics['eval_loss']:.3f} "
          f"at step {metrics['best_step']}", flush=True)
    return name, metrics, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/zh-sft")
    ap.add_argument("--steps", type=int, nargs="*", default=[],
                    help="also train for exactly these numbers of steps (no early stopping, no time budget)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for generation (training uses the profile's)")
    ap.add_argument("--no-budget", action="store_true", help="train without the profile's time budget")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="tiny profile settings for this run, e.g. tiny_vocab_size=2000")
    ap.add_argument("--seed", type=int, default=0, help="training seed (data order and initialisation of the run)")
    ap.add_argument("--measure-only", action="store_true", help="reuse the models of an earlier run of this script")
    args = ap.parse_args()

    import pandas as pd
    import torch

    from twinlib.modeling import get_profile

    torch.set_num_threads(args.threads)
    run = (ROOT / args.run_dir).resolve()
    if not (run / "pairs.csv").exists():
        run.mkdir(parents=True, exist_ok=True)
        stage1(run)
    pairs = pd.read_csv(run / "pairs.csv", keep_default_na=False)
    rows = pairs[pairs["split"] == "test"].reset_index(drop=True)
    sets = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    profile = get_profile("tiny").with_overrides(**sets)
    names = ["default"] + [f"{n}-steps" for n in args.steps]
    training = {}
    for steps in [] if args.measure_only else [None, *args.steps]:
        name, metrics, seconds = train(run, profile, steps, budget=not args.no_budget, seed=args.seed)
        training[name] = {"seconds": seconds, **{k: metrics.get(k) for k in (
            "steps", "epochs", "stop_reason", "eval_loss", "best_step", "tokens_per_second")}}
        torch.set_num_threads(args.threads)
    results = [measure("base (untrained)", replies(run / "models" / "base", rows, profile), rows)]
    for name in names:
        results.append(measure(f"sft {name}", replies(run / "models" / f"sft-{name}", rows, profile), rows))

    n_habit = results[0]["habit"]["n"]
    print(f"\nChinese sample, test split: {len(rows)} messages, {n_habit} of them call for a habit "
          f"(python {sys.version.split()[0]}, torch threads {args.threads})")
    print(f"{'model':<18}{'habit accuracy':>16}{'95% CI':>16}  {'by habit (hits/n)':<44}{'style':>7}"
          f"{'distance':>10}{'exact':>7}")
    for r in results:
        h = r["habit"]
        by = "  ".join(f"{k.replace('_zh', '')} {v['hits']}/{v['n']}" for k, v in sorted(h["by_habit"].items()))
        ci = f"{h['ci_low']:.2f}-{h['ci_high']:.2f}" if h["n"] else "-"
        print(f"{r['model']:<18}{h['accuracy'] or 0:>16.2f}{ci:>16}  {by:<44}{r['style']:>7.2f}"
              f"{r['style_distance']:>10.3f}{r['exact']:>7.2f}")
    print(f"the persona's real replies: style {results[0]['real_style']:.2f}, habit accuracy 1.00")
    for r in results[1:]:
        print(f"\n{r['model']}, examples:")
        for p, g in r["examples"]:
            print(f"  {p.splitlines()[-1][:30]!r:<34} -> {g[:40]!r}")
    (run / "sft_zh_bench.json").write_text(json.dumps({"results": results, "training": training, "set": sets},
                                                      ensure_ascii=False, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
