"""The feedback loop moves the twin: a simulated person with a planted preference.

The person favours replies that contain a phrase the SFT twin uses in about one reply of eight
(found by sampling, not hard-coded). Refinement on their rankings, a reward model trained on
them, PPO against that reward model and DPO on the same pairs must each raise the share of such
replies on held-out messages clearly, while the replies keep the person's style (within the SFT
twin's interval for refinement and DPO; PPO, which drifts further, within a looser bound).

The stages' shipping guards are switched off here (refinement ``keep="last"``, PPO and DPO
``validate=False``): they keep a model only when it validates at least as well against the
person's *past* replies, and a preference the past replies do not show costs a little of that.
This test is about the learning; the guards are tested on the pipeline run.
"""

from __future__ import annotations

import shutil
import statistics

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PHRASES = ("legend", "no stress", "sounds mint", "keen as", "sweet as", "haha", "🌵", "🙌", "obviously", "works",
           "classic", "yes", "thanks")


def _share(replies, phrase):
    return statistics.mean(phrase in r.lower() for r in replies) if replies else 0.0


def _replies(path, run, split="test", n=80, samples=2, seed=3):
    from twinlib.evaluation import load_quietly
    from twinlib.generation import generate_replies, settings_for
    from twinlib.modeling import later_stage_profile
    from twinlib.ppo import train_prompts

    prof = later_stage_profile("auto", run)
    rows = train_prompts(run, split=split, limit=n, seed=seed)
    model, tok = load_quietly(str(path))
    out = generate_replies(model, tok, list(zip(rows["context"], rows["prompt"])), n=samples,
                           settings=settings_for(prof, num_return_sequences=samples), seed=seed,
                           max_prompt_tokens=prof.max_prompt_tokens)
    return [r for rs in out for r in rs], [real for real in rows["response"] for _ in range(samples)]


@pytest.fixture(scope="module")
def planted(pipeline_run, tmp_path_factory):
    """A copy of the pipeline run's stage 1 and SFT twin, the planted phrase, and refinement on the
    planted person's rankings (3 rounds)."""
    import torch

    from twinlib.ranking import AutoRanker
    from twinlib.refine import Refinement
    from twinlib.rundir import RunDir

    torch.set_num_threads(1)
    run = RunDir(tmp_path_factory.mktemp("planted") / "run")
    run.root.mkdir()
    for name in ("pairs.csv", "stage1.json"):
        shutil.copy(pipeline_run / name, run.root / name)
    shutil.copytree(pipeline_run / "dataset", run.dataset)
    shutil.copytree(pipeline_run / "models" / "sft", run.model("sft"))
    train_replies, _ = _replies(run.model("sft"), run, split="train", n=96, samples=4, seed=1)
    shares = {p: _share(train_replies, p) for p in PHRASES}
    near = {p: s for p, s in shares.items() if 0.05 <= s <= 0.25}
    assert near, f"no phrase the twin uses in 5-25% of its replies: {shares}"
    phrase = min(near, key=lambda p: abs(near[p] - 0.125))

    class PlantedRanker(AutoRanker):
        """The simulated person, with one taste more: replies saying the phrase come first."""

        def combine(self, parts, candidates):
            base = super().combine(parts, candidates)
            return base + np.array([1.0 if phrase in c.lower() else 0.0 for c in candidates])

    ref = Refinement(run, "auto", k=8, prompts_per_round=64, keep="last", lr_scale=1.0, mix_original=0.5,
                     epochs_per_round=3, eval_prompts=32, verbose=False)
    ref.start()
    grounded = ref.ranker
    ref.ranker = PlantedRanker(grounded.bank, typicality=grounded.typicality)
    ref.run_rounds(4, "auto")
    return {"run": run, "phrase": phrase, "sft": _replies(run.model("sft"), run)}


def _style(replies, real):
    from twinlib.evaluation import style_gap_ci

    return style_gap_ci(replies, real)


def _moved(planted, path):
    replies, real = _replies(path, planted["run"])
    before, real0 = planted["sft"]
    phrase = planted["phrase"]
    share0, share1 = _share(before, phrase), _share(replies, phrase)
    style0, style1 = _style(before, real0), _style(replies, real)
    words = lambda rs: statistics.mean(len(r.split()) for r in rs)  # noqa: E731
    print(f"'{phrase}': {share0:.2f} -> {share1:.2f}; style distance {style0[0]:.3f} "
          f"[{style0[1]:.3f}, {style0[2]:.3f}] -> {style1[0]:.3f}; words {words(before):.1f} -> {words(replies):.1f} "
          f"(person {words(real0):.1f})")
    return share0, share1, style0, style1


def test_refinement_learns_the_planted_preference(planted):
    share0, share1, style0, style1 = _moved(planted, planted["run"].model("refined"))
    assert share1 >= 0.5 and share1 > share0 + 0.25
    assert style1[0] <= style0[2] + 0.02  # the person's style kept (within the interval)


def test_the_reward_model_ranks_the_planted_phrase_first(planted):
    from twinlib.rewards import RewardModelScorer, load_preferences, split_preferences, train_reward_model

    run, phrase = planted["run"], planted["phrase"]
    rm = train_reward_model(run, "auto", epochs=2, max_pairs=800, log=lambda *_: None)
    _, test = split_preferences(load_preferences(run), 0.2, 0)
    has = test["chosen"].str.lower().str.contains(phrase, regex=False) != test["rejected"].str.lower().str.contains(phrase, regex=False)
    sub = test[has]
    assert len(sub) >= 20
    scorer = RewardModelScorer(run.model("reward"), device="cpu")
    with_phrase = [c if phrase in c.lower() else r for c, r in zip(sub["chosen"], sub["rejected"])]
    without = [r if phrase in c.lower() else c for c, r in zip(sub["chosen"], sub["rejected"])]
    a = scorer(list(sub["context"]), list(sub["prompt"]), with_phrase)
    b = scorer(list(sub["context"]), list(sub["prompt"]), without)
    acc = float(np.mean([x > y for x, y in zip(a, b)]))
    print(f"reward model: held-out accuracy {rm['test_accuracy']:.2f}; phrase pairs ranked right {acc:.2f} of {len(sub)}")
    assert acc >= 0.8


def test_ppo_learns_the_planted_preference(planted):
    from twinlib.modeling import later_stage_profile
    from twinlib.ppo import ppo_config_for, run_ppo

    run = planted["run"]
    if not (run.model("reward") / "config.json").exists():
        pytest.skip("needs the reward model of test_the_reward_model_ranks_the_planted_phrase_first")
    prof = later_stage_profile("auto", run)
    cfg = ppo_config_for(prof, steps=15, learning_rate=2e-4, seed=0)
    run_ppo(run, prof, start_from="sft", config=cfg, progress=False, validate=False, log=lambda *_: None)
    share0, share1, style0, style1 = _moved(planted, run.model("ppo"))
    assert share1 >= 0.4 and share1 > share0 + 0.25
    # PPO drifts further than refinement and DPO: the phrase takes the end of the reply, where the
    # person's emoji were. Measured on one planted run, seeds 1-3, 15 and 25 updates: 'legend' 0.13 ->
    # 0.74-0.89, style distance 0.04 -> 0.12-0.17 (emoji per reply 0.60 -> 0.11 in one of them; the
    # CI machine's run: 0.07 -> 0.49, 0.05 -> 0.12); on the SFT twin trained at 2e-3, seeds 0-3 and 15
    # updates: 0.18 -> 0.52-0.76, style distance 0.04 -> 0.11-0.14. A per-reply form term cannot hold a rate (half of
    # the person's replies have no emoji); the KL penalty bounds the drift. The style stays far nearer
    # the person's than an untrained model's (about 0.35).
    assert style1[0] <= 0.2


def test_dpo_learns_the_planted_preference(planted):
    from twinlib.dpo import train_dpo

    run = planted["run"]
    train_dpo(run, "auto", start_from="sft", epochs=2, max_pairs=800, log=lambda *_: None, validate=False)
    share0, share1, style0, style1 = _moved(planted, run.model("dpo"))
    assert share1 >= 0.5 and share1 > share0 + 0.25
    assert style1[0] <= style0[2] + 0.02
