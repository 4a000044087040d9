"""Stage 3: iterative refinement — sample candidates, rank them, learn from the best (best-of-k).

Starting from ``models/sft``, each round

1. **generates**: for ``prompts_per_round`` messages from the *training* split (never the test
   split; a different sample each round) the current twin samples ``k`` replies, batched, with
   the stage-2 generation settings (:func:`twinlib.generation.settings_for`);
2. **ranks** them: the person in the widget, saved rankings (``file``) or the automatic
   ranker (``auto``, a simulation: similarity to the person's real replies + their style);
3. **learns**: fine-tunes on the top-ranked candidate of each ranking (best-of-k, also called
   rejection-sampling fine-tuning) mixed with some of the person's real pairs so the twin does
   not drift towards its own quirks, with stage 2's trainer (:func:`twinlib.sft.build_trainer`);
4. **measures**: samples fresh replies for a fixed held-out set of prompts (validation split,
   topped up from training) and scores them with the automatic ranker. The score per round is
   the curve the notebook plots; it is written to ``refine_log.json`` after every round.

The result is saved atomically to ``models/refined`` (the same rule as stage 2: an existing
model is reused unless ``overwrite=True``, which keeps the old one as a backup). Work files
live in ``refine/``: each round's candidates (``round_<r>_candidates.jsonl``) and model
(``round_<r>/``), so a crashed or closed session resumes where it stopped instead of sampling
new candidates for the items the person was ranking.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from twinlib.modeling import Profile, has_model, later_stage_profile
from twinlib.ranking import (
    AutoRanker,
    Item,
    RankingSession,
    RankingStore,
    best_of_k,
    item_key,
    load_items,
    model_info,
    resolve_ranker,
    save_items,
    scores_to_ranks,
)
from twinlib.rundir import RunDir, check_fingerprint, data_fingerprint
from twinlib.style import count_words

LOG_FILE = "refine_log.json"
WORK_DIR = "refine"
STAGE2 = "notebook 02 (02_supervised_finetuning.ipynb)"


def _say(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, flush=True)


def pick_prompts(train: pd.DataFrame, n: int, round: int, seed: int = 0, exclude=()) -> pd.DataFrame:
    """``n`` training pairs for one round: a different random sample each round, never the ``exclude`` keys."""
    pool = train[train["response"].astype(str).str.strip() != ""].copy()
    pool["_key"] = [item_key(c, p) for c, p in zip(pool["context"], pool["prompt"])]
    pool = pool.drop_duplicates("_key")
    pool = pool[~pool["_key"].isin(set(exclude))]
    n = min(n, len(pool))
    return pool.sample(n=n, random_state=seed * 1000 + round).drop(columns="_key").reset_index(drop=True)


def held_out_prompts(splits: dict, n: int, seed: int = 0) -> pd.DataFrame:
    """The fixed prompts every round is measured on: validation pairs, topped up from training."""
    frames = []
    for name in ("validation", "train"):
        df = splits.get(name)
        if df is None or len(df) == 0:
            continue
        df = df[df["response"].astype(str).str.strip() != ""]
        frames.append(df.sample(n=min(n, len(df)), random_state=seed))
        if sum(len(f) for f in frames) >= n:
            break
    out = pd.concat(frames).head(n).reset_index(drop=True) if frames else pd.DataFrame()
    if out.empty:
        raise ValueError("no prompts to measure the refinement on: the validation and training splits are empty.")
    return out


@contextmanager
def _torch_threads(n: int | None):
    """Run a block with ``n`` torch threads (``None``: unchanged), restoring the setting afterwards."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _datasets_bars(on: bool) -> bool:
    """Switch the ``datasets`` progress bars (tokenizing a few dozen rows needs none); True if switched."""
    try:
        from datasets.utils import logging as dlog
    except ImportError:  # pragma: no cover
        return False
    was = dlog.is_progress_bar_enabled()
    if was == on:
        return False
    (dlog.enable_progress_bar if on else dlog.disable_progress_bar)()
    return True


def _digest(ids) -> str:
    return hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:16]


class Refinement:
    """The refinement loop of one run, step by step (the notebook drives it; see :func:`run_refinement`).

    ``start()`` loads ``models/sft`` and measures it (round 0); then per round ``candidates(r)``,
    ``rank(r, items, ranker)``, ``learn(r, judgements)``; ``finish()`` saves ``models/refined``.
    ``run(rounds, ranker)`` does all of it; ``widget(rounds)`` lets the person rank in the
    notebook and learns whenever a round's queue is done.
    """

    def __init__(self, run_dir, profile: str | Profile = "tiny", k: int = 4, prompts_per_round: int = 32,
                 eval_prompts: int = 96, eval_samples: int = 2, epochs_per_round: float = 2.0,
                 max_steps_per_round: int | None = None, mix_original: float = 1.0, lr_scale: float = 0.2,
                 seed: int = 0, overwrite: bool = False, verbose: bool = True, progress: bool = False,
                 gen_batch_size: int = 64, threads: int | None = None, keep: str = "best"):
        self.run = RunDir(run_dir)
        self.profile = later_stage_profile(profile, self.run)
        self.k = int(k)
        if self.k < 2:
            raise ValueError("k must be at least 2: ranking needs two candidates to compare.")
        self.prompts_per_round = int(prompts_per_round)
        self.eval_prompts = int(eval_prompts)
        self.eval_samples = int(eval_samples)
        self.epochs_per_round = float(epochs_per_round)
        self.max_steps_per_round = max_steps_per_round
        self.mix_original = float(mix_original)
        self.lr_scale = float(lr_scale)
        self.seed = int(seed)
        self.overwrite = overwrite
        self.verbose = verbose
        self.progress = progress
        self.gen_batch_size = int(gen_batch_size)
        # CPU threads for sampling and training: the profile's (tiny: 1; its matrices are too small
        # for a second thread, and on a busy machine oversubscription made sampling 30x slower).
        self.threads = threads if threads is not None else (getattr(self.profile, "cpu_threads", 0)
                                                           or (1 if self.profile.base_model == "tiny" else None))
        if keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' (the best validated round) or 'last', got {keep!r}")
        self.keep = keep
        self.work = self.run.root / WORK_DIR
        self.history: list[dict] = []
        self.reused = False
        self.finished = False
        self.model = self.tokenizer = None
        self.model_dir: Path | None = None
        self._started = False

    # ------------------------------------------------------------------ set-up
    @property
    def final(self) -> Path:
        return self.run.model("refined")

    def start(self) -> "Refinement":
        """Load the stage-2 model, the splits and the automatic ranker; measure round 0."""
        from twinlib.sft import load_splits

        if self._started:
            return self
        self.run.require(self.run.model("sft"), STAGE2)
        self.store = RankingStore.for_run(self.run)  # also when reused: the notebook shows its rankings
        if has_model(self.final) and not self.overwrite:
            check_fingerprint(self.run, self.final, "notebook 03 (03_iterative_refinement.ipynb)")
            self.reused = True
            self.finished = True
            log = self.run.root / LOG_FILE
            self.history = json.loads(log.read_text(encoding="utf-8"))["rounds"] if log.exists() else []
            _say(f"{self.final} already holds a refined model: reused (pass overwrite=True to refine again; "
                 "the old model is then kept as a backup).", self.verbose)
            self._started = True
            return self
        if self.overwrite and self.work.exists():
            shutil.rmtree(self.work)  # new rounds; rankings.jsonl keeps every old judgement
        self.work.mkdir(parents=True, exist_ok=True)
        self.splits = load_splits(self.run)
        self.train = self.splits["train"].reset_index(drop=True)
        self.ranker = AutoRanker.from_pairs(self.train, seed=self.seed)
        self.eval_rows = held_out_prompts(self.splits, self.eval_prompts, seed=self.seed)
        self._load(self.run.model("sft"))
        self.history = [self.measure(round=0)]
        self._save_log()
        self._started = True
        return self

    def _threads(self) -> int | None:
        return self.threads if self.model is not None and next(self.model.parameters()).device.type == "cpu" else None

    def _load(self, path) -> None:
        import torch

        from twinlib.modeling import load_model, pick_device, pick_dtype

        device = pick_device()
        dtype = pick_dtype(device) if self.profile.lora else torch.float32
        self.model, self.tokenizer = load_model(path, device=device, dtype=dtype)
        self.model_dir = Path(path)
        self.model_meta = model_info(path, root=self.run.root)

    # ------------------------------------------------------------------ steps
    def candidates(self, round: int) -> list[Item]:
        """``k`` sampled replies for this round's training prompts (reused if already sampled by this model)."""
        from twinlib.generation import generate_replies, settings_for

        self.start()
        path = self.work / f"round_{round}_candidates.jsonl"
        if path.exists():
            items = load_items(path)
            if items and all(it.model.get("version") == self.model_meta["version"] and len(it.candidates) == self.k for it in items):
                _say(f"round {round}: reusing the {len(items)} candidate sets sampled before ({path.name})", self.verbose)
                return items
        rows = pick_prompts(self.train, self.prompts_per_round, round, seed=self.seed)
        t0 = time.time()
        with _torch_threads(self._threads()):
            replies = generate_replies(
                self.model, self.tokenizer, list(zip(rows["context"], rows["prompt"])), n=self.k,
                settings=settings_for(self.profile), seed=self.seed * 1000 + round, batch_size=self.gen_batch_size,
                max_prompt_tokens=self.profile.max_prompt_tokens, progress=self.progress,
            )
        items = []
        for row, cands in zip(rows.itertuples(index=False), replies):
            it = Item.make(row.context, row.prompt, cands, model=self.model_meta, round=round, reference=row.response)
            it.item_id = f"r{round}:{self.model_meta['version'][:6]}:{item_key(row.context, row.prompt)}"
            items.append(it)
        save_items(path, items)
        _say(f"round {round}: sampled {self.k} replies for {len(items)} training prompts in {time.time() - t0:.1f}s", self.verbose)
        return items

    def session(self, items, ranker_name: str = "person") -> RankingSession:
        return RankingSession(self.store, items, ranker=ranker_name)

    def rank(self, round: int, items: list[Item], ranker: str = "auto") -> list[dict]:
        """Judgements for this round: simulated (``auto``) or saved ones (``file``, auto for the rest)."""
        self.start()
        if ranker == "auto":
            s = self.session(items, "auto")
            n = self.ranker.rank_session(s)
            _say(f"round {round}: the automatic ranker (SIMULATED, not you) ranked {n} items", self.verbose)
            return s.judgements()
        if ranker == "file":  # every saved judgement of this round (the person's, on whatever candidates they saw)
            saved = [r for r in self.store.latest().values() if r.get("round") == round]
            if saved:
                people = sum(r.get("ranker") != "auto" for r in saved)
                _say(f"round {round}: using {len(saved)} saved rankings from {self.store.path.name} "
                     f"({people} by a person, {len(saved) - people} simulated)", self.verbose)
                return saved
            _say(f"round {round}: no saved rankings for this round in {self.store.path.name}: the automatic "
                 "ranker stands in (SIMULATED)", self.verbose)
            return self.rank(round, items, "auto")
        raise ValueError(f"rank() takes ranker 'auto' or 'file' (the widget ranks through widget()); got {ranker!r}")

    def learn(self, round: int, judgements: list[dict]) -> dict:
        """Fine-tune on the best-of-k examples of ``judgements``, measure, log; returns the round's log row."""
        self.start()
        t0 = time.time()
        best = best_of_k(judgements)
        ids = [j["id"] for j in judgements]
        round_dir = self.work / f"round_{round}"
        meta_file = round_dir / "round.json"
        if meta_file.exists():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if meta.get("judgements") == _digest(ids) and meta.get("from_version") == self.model_meta["version"]:
                self._load(round_dir)
                row = meta["log"]
                _say(f"round {round}: already learned from these rankings; reusing {round_dir.relative_to(self.run.root)}", self.verbose)
                self._log(row)
                return row
        if best.empty:
            _say(f"round {round}: no ranked item to learn from (all skipped or 'none of these'); the model is unchanged", self.verbose)
            train_metrics = {"steps": 0, "train_loss": None, "n_examples": 0}
        else:
            train_metrics = self._train(best, round)
        from_version = self.model_meta["version"]
        if round_dir.exists():
            shutil.rmtree(round_dir)
        self.model.save_pretrained(round_dir)
        self.tokenizer.save_pretrained(round_dir)
        self.model_dir = round_dir
        self.model_meta = model_info(round_dir, root=self.run.root)
        m = self.measure(round=round)
        rankers = sorted({j.get("ranker") or "?" for j in judgements})
        row = {**m, **train_metrics, "n_rankings": len(judgements), "n_best": int(len(best)),
               "rankers": rankers, "simulated": any(r == "auto" for r in rankers),
               "seconds": round_(time.time() - t0)}
        meta_file.write_text(json.dumps({"judgements": _digest(ids), "from_version": from_version, "log": row},
                                        indent=2, default=str), encoding="utf-8")
        self._log(row)
        _say(f"round {round}: learned from {len(best)} best-of-{self.k} replies "
             f"(+{train_metrics.get('n_original', 0)} real pairs, {train_metrics['steps']} steps); "
             f"auto-score of fresh replies {m['auto_score']:.3f} (round 0: {self.history[0]['auto_score']:.3f})", self.verbose)
        return row

    def _train(self, best: pd.DataFrame, round: int) -> dict:
        from twinlib.sft import build_trainer, to_sft_dataset

        prof = self.profile
        examples = best[["context", "prompt", "response"]]
        n_orig = int(round_(len(examples) * self.mix_original))
        if n_orig:
            orig = self.train.sample(n=min(n_orig, len(self.train)), random_state=self.seed * 1000 + round)
            examples = pd.concat([examples, orig[["context", "prompt", "response"]]], ignore_index=True)
        train_ds = to_sft_dataset(examples, self.tokenizer, prof.max_length).shuffle(seed=self.seed + round)
        eval_ds = to_sft_dataset(self.eval_rows, self.tokenizer, prof.max_length)
        quiet = not self.progress and _datasets_bars(False)
        bs = prof.sft_batch_size * prof.sft_grad_accum
        steps = self.max_steps_per_round or max(1, math.ceil(len(train_ds) / bs * self.epochs_per_round))
        ckpt = self.work / f".checkpoints-{round}"
        self.model.train()
        try:
            trainer = build_trainer(
                self.model, self.tokenizer, prof, train_ds, eval_ds, ckpt, max_steps=steps, seed=self.seed + round,
                patience=None, progress=f"round {round}: learning" if self.progress else False, n_evals=2,
                learning_rate=prof.sft_learning_rate * self.lr_scale, warmup_steps=0,
            )
            from twinlib.sft import label_positions_only

            with _torch_threads(self._threads()), label_positions_only():
                result = trainer.train()
            model = trainer.model
            if prof.lora and hasattr(model, "merge_and_unload"):
                model = model.merge_and_unload()
            self.model = model
        finally:
            shutil.rmtree(ckpt, ignore_errors=True)
            if quiet:
                _datasets_bars(True)
        self.model.eval()
        return {"steps": int(trainer.state.global_step), "train_loss": round_(result.training_loss),
                "n_examples": len(train_ds), "n_original": n_orig}

    def measure(self, round: int) -> dict:
        """Fresh replies to the fixed held-out (validation) prompts, the same sampling seed every round:
        the automatic ranker's score and the validation ``fidelity`` (:func:`twinlib.evaluation.fidelity_scores`,
        the score stage 5 picks the best model by), one value per prompt for paired comparisons."""
        from twinlib.evaluation import fidelity_scores, words_and_emoji
        from twinlib.generation import generate_replies, settings_for

        rows = self.eval_rows
        with _torch_threads(self._threads()):
            replies = generate_replies(
                self.model, self.tokenizer, list(zip(rows["context"], rows["prompt"])), n=max(2, self.eval_samples),
                settings=settings_for(self.profile), seed=self.seed + 12345, batch_size=self.gen_batch_size,
                max_prompt_tokens=self.profile.max_prompt_tokens,
            )
        flat = [r for rs in replies for r in rs]
        refs = [ref for ref, rs in zip(rows["response"], replies) for _ in rs]
        parts = self.ranker.components(flat, refs)
        scores = self.ranker.combine(parts, flat)
        form = parts["form"]
        fid = fidelity_scores([rs[0] for rs in replies], [rs[1] for rs in replies], rows["response"].tolist())
        words, emoji = words_and_emoji(flat)
        out = {
            "round": round,
            "model": self.model_meta,
            "auto_score": round_(float(np.mean(scores))),
            "auto_score_se": round_(float(np.std(scores) / math.sqrt(max(len(scores), 1)))),
            "meaning": round_(float(np.nanmean(parts["meaning"]))),
            "wording": round_(float(np.nanmean(parts["wording"]))),
            "form": round_(float(np.nanmean(form))) if not np.all(np.isnan(form)) else None,
            "fidelity": round_(float(fid.mean())),
            "fidelity_items": [round_(x, 5) for x in fid],
            "words_per_reply": round_(float(words.mean())),
            "emoji_per_reply": round_(float(emoji.mean())),
            "empty_rate": round_(float(np.mean([not r.strip() for r in flat]))),
            "mean_words": round_(float(np.mean([count_words(r) for r in flat]))),
            "examples": [{"prompt": p, "reply": rs[0]} for p, rs in list(zip(rows["prompt"], replies))[:3]],
        }
        return out

    def explain(self, item: Item) -> pd.DataFrame:
        """One item's candidates with the automatic ranker's parts, score and rank: how it decides."""
        parts = self.ranker.components(item.candidates, [item.reference] * len(item.candidates))
        scores = self.ranker.combine(parts, item.candidates)
        return pd.DataFrame({
            "candidate": item.candidates,
            "meaning (cosine to real reply)": np.round(parts["meaning"], 3),
            "wording (chrF to real reply)": np.round(parts["wording"], 3),
            "form (typical for you)": np.round(parts["form"], 3),
            "score": np.round(scores, 3),
            "rank": scores_to_ranks(scores),
        })

    # ------------------------------------------------------------------ bookkeeping
    def _log(self, row: dict) -> None:
        self.history = [h for h in self.history if h["round"] != row["round"]] + [row]
        self.history.sort(key=lambda h: h["round"])
        self._save_log()

    def _save_log(self) -> None:
        self.run.write_json(LOG_FILE, {
            "profile": self.profile.name, "k": self.k, "prompts_per_round": self.prompts_per_round,
            "eval_prompts": len(getattr(self, "eval_rows", [])), "eval_samples": self.eval_samples,
            "mix_original": self.mix_original, "seed": self.seed, "finished": self.finished,
            "rounds": self.history,
        })

    def _fidelity(self, round: int) -> float:
        return next((h.get("fidelity") for h in self.history if h["round"] == round), float("nan"))

    def verdict(self) -> dict:
        """Did refinement beat the model it started from? The last round against round 0 (the stage-2
        model) on the validation prompts: the paired difference in fidelity with its 95% interval,
        and words and emoji per reply next to the person's real replies there."""
        from twinlib.evaluation import words_and_emoji
        from twinlib.stats import paired_diff_ci

        rounds = [h for h in self.history if h.get("fidelity_items")]
        if len(rounds) < 2:
            return {"verdict": "no refinement round has been measured yet", "better": None}
        kept = getattr(self, "kept_round", None)
        if kept is None:
            kept = self.best_round()
        first = rounds[0]
        last = next((h for h in rounds if h["round"] == kept), rounds[-1])
        if last is first:
            return {"verdict": ("No refinement round validated better than the stage-2 model, so refined IS the "
                                "stage-2 model: " + ", ".join(f"round {h['round']} {h['fidelity']:.3f}" for h in rounds)
                                + " (validation fidelity)."), "better": None, "kept_round": 0, "difference": 0.0,
                    "ci_low": 0.0, "ci_high": 0.0, "n": len(first["fidelity_items"]),
                    "fidelity": {f"round {h['round']}": h["fidelity"] for h in rounds}}
        d, lo, hi = paired_diff_ci(last["fidelity_items"], first["fidelity_items"], seed=self.seed)
        rows = getattr(self, "eval_rows", None)
        real_words, real_emoji = words_and_emoji(rows["response"].tolist()) if rows is not None else (np.zeros(1), np.zeros(1))
        if lo > 0:
            text, better = f"refined (round {kept}) is BETTER than sft on validation fidelity: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]", True
        elif hi < 0:
            text, better = f"refined (round {kept}) is WORSE than sft on validation fidelity: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]", False
        else:
            text, better = (f"refined (round {kept}) is not measurably different from sft on validation fidelity: {d:+.3f} "
                            f"[{lo:+.3f}, {hi:+.3f}], the interval holds 0"), None
        return {"verdict": text + " (95% paired bootstrap, validation messages).", "better": better, "kept_round": kept,
                "difference": d, "ci_low": lo, "ci_high": hi, "n": len(first["fidelity_items"]),
                "fidelity": {f"round {h['round']}": h["fidelity"] for h in rounds},
                "words_per_reply": {"sft": first.get("words_per_reply"), "refined": last.get("words_per_reply"),
                                    "person": round_(float(real_words.mean()))},
                "emoji_per_reply": {"sft": first.get("emoji_per_reply"), "refined": last.get("emoji_per_reply"),
                                    "person": round_(float(real_emoji.mean()))}}

    def best_round(self) -> int:
        """The round whose model validated best (round 0 is the stage-2 model; a tie goes to the
        earlier round): refinement hands on its best validated model, not simply its last.
        With ``keep="last"`` the last round, whatever it validates: for rankings that express a
        preference the person's past replies do not show (fidelity is measured against those)."""
        scored = [(h["round"], h.get("fidelity")) for h in self.history if isinstance(h.get("fidelity"), (int, float))]
        if self.keep == "last" or not scored:
            return self.history[-1]["round"] if self.history else 0
        top = max(f for _, f in scored)
        return min(r for r, f in scored if f == top)

    def finish(self) -> Path:
        """Save the best validated round's model (:meth:`best_round`) to ``models/refined``
        atomically (an old one is kept as a backup). When no round validated better than the
        stage-2 model, that model is what is saved, and ``refine_log.json`` says so."""
        from twinlib.sft import _publish

        if self.reused:
            return self.final
        self.start()
        kept = self.best_round()
        self.kept_round = kept
        if self.history and kept != self.history[-1]["round"]:
            self._load(self.run.model("sft") if kept == 0 else self.work / f"round_{kept}")
            _say(f"round {kept} validated best (fidelity {self._fidelity(kept):.3f}; last round "
                 f"{self._fidelity(self.history[-1]['round']):.3f}): it is the model saved"
                 + (", i.e. refinement kept the stage-2 model" if kept == 0 else ""), self.verbose)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        tmp = self.run.models / f".refined.tmp-{stamp}"
        try:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            self.finished = True
            (tmp / "twin.json").write_text(json.dumps({
                "kind": "refined", "from": "models/sft", "method": "best-of-k fine-tuning",
                "data_fingerprint": data_fingerprint(self.run), "kept_round": kept,
                "rounds": len(self.history) - 1, "k": self.k, "profile": self.profile.name,
                "simulated_rankings": any(h.get("simulated") for h in self.history[1:]),
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            }, indent=2), encoding="utf-8")
            self._save_log()
            shutil.copy(self.run.root / LOG_FILE, tmp / LOG_FILE)
            backup = _publish(tmp, self.final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if backup is not None:
            _say(f"the previous refined model was kept as {backup.name}", self.verbose)
        _say(f"saved {self.final.relative_to(self.run.root)}", self.verbose)
        return self.final

    # ------------------------------------------------------------------ drivers
    def run_rounds(self, rounds: int = 2, ranker: str = "auto") -> list[dict]:
        """All rounds without a person: ``ranker`` is ``auto`` or ``file``; then :meth:`finish`."""
        self.start()
        if self.reused:
            return self.history
        from twinlib.progress import Progress

        bar = Progress("refinement rounds", rounds, every=0)
        for r in range(1, rounds + 1):
            items = self.candidates(r)
            row = self.learn(r, self.rank(r, items, ranker))
            bar.update(r, f"auto-score {row['auto_score']:.3f}, validation fidelity {row.get('fidelity', float('nan')):.3f}")
        self.finish()
        return self.history

    def widget(self, rounds: int = 2):
        """The ranking widget for the person; learning runs each time a round's queue is done.

        Returns the widget (display it); it never blocks. After the last round the model is
        saved to ``models/refined`` and the widget says so; run the notebook's plot cell again.
        """
        from twinlib.ranking_widget import RankingWidget

        self.start()
        if self.reused:
            import ipywidgets as widgets

            return widgets.HTML(f"<b>{self.final}</b> already exists: nothing to rank (overwrite=True refines again).")
        state = {"round": 1}

        def note(r):
            return f"Round {r} of {rounds}: rank the twin's {self.k} replies to each message (1 = most like you)."

        def on_complete(session):
            r = state["round"]
            w._say(f"round {r} done: learning from your rankings… (this takes a moment)")
            self.learn(r, session.judgements())
            if r >= rounds:
                self.finish()
                w._say(f"all {rounds} rounds done; saved models/refined. Run the cells below to see the plot.")
                return
            state["round"] = r + 1
            w.set_session(self.session(self.candidates(r + 1)), note=note(r + 1))
            w._say(f"round {r} learned (auto-score {self.history[-1]['auto_score']:.3f}); round {r + 1} is ready.")

        w = RankingWidget(self.session(self.candidates(1)), on_complete=on_complete, note=note(1))
        # resume: rounds whose queue is already complete are learned at once
        while w.session.done and state["round"] <= rounds and not self.finished:
            on_complete(w.session)
        return w


def round_(x, nd: int = 4):
    return None if x is None else round(float(x), nd)


def run_refinement(run_dir, profile: str | Profile = "tiny", rounds: int = 2, k: int = 4, prompts_per_round: int = 32,
                   ranker: str = "auto", overwrite: bool = False, seed: int = 0, interactive: bool | None = None,
                   **kw) -> Refinement:
    """Refine ``models/sft`` for ``rounds`` rounds and save ``models/refined``; returns the :class:`Refinement`.

    ``ranker``: ``auto`` (simulated), ``file`` (saved ``rankings.jsonl``, auto where a round has
    none) or ``widget`` (the person; in a non-interactive run such as papermill it falls back
    to ``file`` and says so). With ``widget`` in a notebook, display ``ref.ui``: rounds then
    progress as the person ranks. ``kw`` goes to :class:`Refinement`.
    """
    ref = Refinement(run_dir, profile, k=k, prompts_per_round=prompts_per_round, seed=seed, overwrite=overwrite, **kw)
    mode, sentence = resolve_ranker(ranker, interactive=interactive)
    ref.mode = mode
    if ref.verbose:
        print(sentence, flush=True)
    ref.ui = None
    if mode == "widget":
        ref.ui = ref.widget(rounds)
    else:
        ref.run_rounds(rounds, mode)
    return ref


def read_log(run_dir) -> dict:
    """The ``refine_log.json`` of a run."""
    return RunDir(run_dir).read_json(LOG_FILE)
