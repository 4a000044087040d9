"""Stage 2: loss masking, saving/reusing the model, prompt tests, and the twin really learning the persona's style.

Everything runs the tiny model on the bundled synthetic persona (Robin Vale) on one CPU thread.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

from twinlib.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here trains or samples the tiny model."""


@pytest.fixture(scope="module")
def sample_run(sample_stage1, tmp_path_factory) -> RunDir:
    """Stage 1 on the sample persona (a copy: the tests here add models to it)."""
    run = tmp_path_factory.mktemp("sft") / "run"
    shutil.copytree(sample_stage1, run)
    return RunDir(run).ensure()


@pytest.fixture(scope="module")
def small_run(sample_run, tmp_path_factory) -> RunDir:
    """A small run dir with only ``pairs.csv`` (no HF dataset) and the sample run's tiny base model."""
    from twinlib.sft import load_splits, prepare_base

    splits = load_splits(sample_run)
    prepare_base(sample_run, "tiny", splits)
    run = RunDir(tmp_path_factory.mktemp("small") / "run").ensure()
    import pandas as pd

    rows = pd.concat([splits["train"].head(48), splits["validation"].head(8), splits["test"].head(8)])
    rows.to_csv(run.pairs_csv, index=False)
    shutil.copytree(sample_run.model("base"), run.model("base"))
    # the base's tokenizer was trained on the whole sample: mark it as this subset's (the reuse guard checks)
    meta = run.model("base") / "twin.json"
    from twinlib.rundir import data_fingerprint

    meta.write_text(json.dumps({**json.loads(meta.read_text()), "data_fingerprint": data_fingerprint(run)}))
    return run


# --------------------------------------------------------------------------- data and masking


def test_to_sft_dataset_is_conversational_prompt_completion(sample_run):
    from twinlib.modeling import SYSTEM_PROMPT, build_messages
    from twinlib.sft import load_splits, to_sft_dataset

    train = load_splits(sample_run)["train"]
    row = train[train["context"].str.len() > 2].iloc[0]
    ds = to_sft_dataset(train.head(50))
    assert set(ds.column_names) == {"prompt", "completion"} and len(ds) == 50
    ex = to_sft_dataset([row.to_dict()])[0]
    assert ex["prompt"] == build_messages(row["context"], row["prompt"])  # same layout as generation
    assert ex["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert ex["completion"] == [{"role": "assistant", "content": row["response"]}]
    empty = to_sft_dataset([{"prompt": "hi", "response": "  ", "context": "[]"}])
    assert len(empty) == 0


def test_loss_is_masked_on_prompt_and_context_tokens(small_run, tmp_path):
    """Labels are -100 exactly on the system prompt, context and the message answered, and equal the
    input ids on the reply and its end-of-turn marker — in the data TRL prepares and in its collator."""
    from twinlib.modeling import get_profile, load_model
    from twinlib.sft import build_trainer, load_splits, to_sft_dataset

    prof = get_profile("tiny")
    model, tok = load_model(small_run.model("base"), device="cpu")
    train = load_splits(small_run)["train"]
    rows = train[train["context"].str.len() > 2].head(3)  # with earlier turns as context
    assert len(rows) == 3
    ds = to_sft_dataset(rows, tok, prof.max_length)
    trainer = build_trainer(model, tok, prof, ds, ds, tmp_path / "ckpt", max_steps=1, progress=False)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    prepared = [trainer.train_dataset[i] for i in range(len(ds))]
    assert len(prepared) == len(rows)
    for i, (_, row) in enumerate(rows.iterrows()):
        ids, labels = prepared[i]["input_ids"], prepared[i]["labels"]
        prompt = tok.apply_chat_template(ds[i]["prompt"], tokenize=False, add_generation_prompt=True)
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        n = len(prompt_ids)
        assert ids[:n] == prompt_ids                               # the prompt is a prefix of the example
        assert all(l == -100 for l in labels[:n])                  # ... and entirely masked
        assert labels[n:] == ids[n:] and all(l != -100 for l in labels[n:])  # the reply is kept
        trained = tok.decode(ids[n:])
        assert trained.startswith(row["response"]) and im_end in labels[n:]  # reply + end of turn
        assert row["prompt"] in tok.decode(ids[:n])
    batch = trainer.data_collator(prepared)
    for i, ex in enumerate(prepared):  # right padding: padded positions are ignored too
        k = len(ex["input_ids"])
        assert batch["labels"][i, :k].tolist() == ex["labels"]
        assert (batch["labels"][i, k:] == -100).all() and (batch["attention_mask"][i, k:] == 0).all()


def test_loss_mask_preview_matches_what_is_trained(small_run):
    from twinlib.modeling import load_tokenizer
    from twinlib.sft import load_splits, loss_mask_preview

    tok = load_tokenizer(small_run.model("base"))
    row = load_splits(small_run)["train"].iloc[0].to_dict()
    table = loss_mask_preview(tok, row, max_length=256)
    assert table["text"].iloc[1] == row["response"] + "<|im_end|>\n"
    assert table["text"].iloc[0].endswith("<|im_start|>assistant\n") and row["prompt"] in table["text"].iloc[0]


def test_missing_stage1_output_says_which_notebook(tmp_path):
    from twinlib.sft import load_splits

    with pytest.raises(FileNotFoundError, match="01_collect_data"):
        load_splits(tmp_path)


def test_sft_config_uses_hardware_kwargs_and_best_checkpoint(tmp_path):
    from twinlib.modeling import get_profile
    from twinlib.sft import plan_steps, sft_config

    prof = get_profile("tiny")
    cfg = sft_config(prof, tmp_path, n_train=1000)
    per_epoch = math.ceil(1000 / (prof.sft_batch_size * prof.sft_grad_accum))
    expected = math.ceil(per_epoch * prof.sft_epochs)
    if prof.sft_max_steps > 0:
        expected = min(expected, prof.sft_max_steps)
    assert cfg.max_steps == plan_steps(prof, 1000) == expected
    assert plan_steps(prof.with_overrides(sft_max_steps=5), 1000) == 5            # a cap on the epochs
    assert plan_steps(prof.with_overrides(sft_max_steps=10**6), 1000) == math.ceil(per_epoch * prof.sft_epochs)
    assert cfg.bf16 is False and cfg.gradient_checkpointing is False and cfg.use_cpu is True
    assert cfg.load_best_model_at_end and cfg.metric_for_best_model == "eval_loss" and not cfg.greater_is_better
    assert cfg.completion_only_loss is True and cfg.max_length == prof.max_length
    assert cfg.eval_steps == cfg.save_steps and cfg.save_total_limit == 2
    assert sft_config(prof, tmp_path, n_train=1000, max_steps=7).max_steps == 7
    assert sft_config(prof, tmp_path, n_train=1000, learning_rate=1e-4).learning_rate == 1e-4


def test_scoring_only_labelled_positions_gives_the_same_loss(small_run, tmp_path):
    """label_positions_only() (TRL's compact fused LM head) changes the speed, not the loss or gradients."""
    import torch

    from twinlib.modeling import get_profile, load_model
    from twinlib.sft import build_trainer, label_positions_only, load_splits, to_sft_dataset

    prof = get_profile("tiny")
    model, tok = load_model(small_run.model("base"), device="cpu", dtype=torch.float32)
    ds = to_sft_dataset(load_splits(small_run)["train"].head(8), tok, prof.max_length)
    trainer = build_trainer(model, tok, prof, ds, ds, tmp_path / "ckpt", max_steps=1, progress=False)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    model.train()
    for mod in model.modules():  # no dropout: both passes must see the same network
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0

    def loss_and_grad():
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    full, g_full = loss_and_grad()
    with label_positions_only():
        compact, g_compact = loss_and_grad()
    assert compact == pytest.approx(full, rel=1e-5)
    assert torch.allclose(g_full, g_compact, atol=1e-6)


def test_training_ends_on_time_budget_or_convergence(small_run):
    """The stop reason is recorded: a tiny time budget ends training early; a learning rate of 0 never
    improves the validation loss, so early stopping ends it after `patience` evaluations."""
    from twinlib import sft

    shutil.rmtree(small_run.model("sft"), ignore_errors=True)
    budget = sft.train_sft(small_run, "tiny", max_steps=2000, progress=False, time_budget_min=0.1, patience=None)
    assert budget["stop_reason"] == "time budget spent" and budget["steps"] < 2000
    assert budget["best_step"] is not None and budget["time_budget_min"] == 0.1
    # the learning-rate schedule was fitted to the budget, and training ended where it did
    assert budget["steps"] <= budget["schedule_steps"] < 2000, budget
    still = sft.train_sft(small_run, "tiny", max_steps=60, progress=False, overwrite=True, patience=2,
                          learning_rate=0.0, time_budget_min=0)
    assert still["stop_reason"].startswith("converged") and still["steps"] < 60, still
    for p in small_run.models.glob("sft.bak-*"):
        shutil.rmtree(p)
    shutil.rmtree(small_run.model("sft"))


def test_time_budget_fits_the_learning_rate_schedule(monkeypatch):
    """When the planned steps will not fit in the budget, the cosine schedule is shortened to the
    steps that do, so training ends annealed at the fitted step rather than cut at full rate."""
    import types

    import torch
    from transformers import TrainerControl, TrainingArguments, get_cosine_schedule_with_warmup

    from twinlib import sft

    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]},  # two groups, as the Trainer's
                           {"params": [torch.nn.Parameter(torch.zeros(1))], "weight_decay": 0.0}], lr=1.0)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=10, num_training_steps=1000)
    args = TrainingArguments(output_dir="unused", eval_strategy="steps", save_strategy="steps", report_to=[])
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(sft.time, "monotonic", lambda: clock.now)
    cb = sft.time_budget_callback(1.0, every=25)  # one minute
    state = types.SimpleNamespace(global_step=0, max_steps=1000)
    cb.on_train_begin(args, state, TrainerControl())

    state.global_step, clock.now = 25, 5.0  # the first seconds (evaluation, warm-up) are not a rate yet
    cb.on_step_end(args, state, TrainerControl(), lr_scheduler=sched)
    assert cb.planned is None

    state.global_step, clock.now = 450, 9.5  # 0.02 s a step: the 1000 planned steps fit in the minute
    cb.on_step_end(args, state, TrainerControl(), lr_scheduler=sched)
    assert cb.planned is None and sched.lr_lambdas[0](505) == pytest.approx(0.5, abs=0.01)

    state.global_step, clock.now = 500, 40.0  # 0.08 s a step: 250 more steps fit in the 20 s left
    control = cb.on_step_end(args, state, TrainerControl(), lr_scheduler=sched)
    assert cb.planned == state.max_steps == 750 and not control.should_training_stop
    assert all(f(380) == pytest.approx(0.5, abs=0.01) for f in sched.lr_lambdas)  # half-way through the fitted cosine
    assert sched.lr_lambdas[0](750) == pytest.approx(0.0, abs=1e-9)

    state.global_step, clock.now = 600, 44.0  # faster again: never lengthened (the rate would rise mid-anneal)
    cb.on_step_end(args, state, TrainerControl(), lr_scheduler=sched)
    assert cb.planned == state.max_steps == 750

    state.global_step, clock.now = 650, 54.0  # slower: shortened again, to 650 + 6 s / (54 s / 650)
    cb.on_step_end(args, state, TrainerControl(), lr_scheduler=sched)
    assert cb.planned == state.max_steps == 722

    state.global_step, clock.now = 722, 59.0  # the fitted end, before the budget: stop, evaluate, save
    control = cb.on_step_end(args, state, TrainerControl(), lr_scheduler=sched)
    assert control.should_training_stop and control.should_evaluate and control.should_save and cb.fired

    plain = sft.time_budget_callback(1.0, fit_schedule=False)  # without fitting, only the hard stop
    plain.on_train_begin(args, types.SimpleNamespace(global_step=0), TrainerControl())
    clock.now = 30.0
    plain.on_step_end(args, types.SimpleNamespace(global_step=100, max_steps=1000), TrainerControl(), lr_scheduler=sched)
    assert plain.planned is None


# --------------------------------------------------------------------------- saving and reusing


def test_train_saves_reuses_and_never_overwrites_silently(small_run, monkeypatch):
    from twinlib import sft
    from twinlib.modeling import load_model

    first = sft.train_sft(small_run, "tiny", max_steps=2, progress=False, patience=None)
    out = small_run.model("sft")
    assert first["reused"] is False and first["steps"] == 2
    for name in ("config.json", "model.safetensors", "tokenizer.json", "twin.json", sft.METRICS_FILE,
                 sft.LOG_FILE, sft.CURVE_FILE):
        assert (out / name).exists(), name
    assert json.loads((out / "twin.json").read_text())["kind"] == "sft"
    assert any("eval_loss" in r for r in sft.read_log_history(out))
    model, tok = load_model(out, device="cpu")  # loadable by the next stages
    assert tok.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id
    assert not list(small_run.models.glob(".sft*"))  # no temporary folders left

    stamp = (out / "model.safetensors").stat().st_mtime_ns
    again = sft.train_sft(small_run, "tiny", max_steps=2, progress=False)
    assert again["reused"] is True and again["eval_loss"] == first["eval_loss"]
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp

    # a crash while overwriting leaves the old model in place and no half-written folder
    def boom(*a, **k):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(sft, "build_trainer", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        sft.train_sft(small_run, "tiny", max_steps=2, progress=False, overwrite=True)
    monkeypatch.undo()
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(small_run.models.glob(".sft*")) and not list(small_run.models.glob("sft.bak-*"))

    third = sft.train_sft(small_run, "tiny", max_steps=3, progress=False, overwrite=True, patience=None)
    assert third["reused"] is False and third["steps"] == 3
    backups = list(small_run.models.glob("sft.bak-*"))
    assert len(backups) == 1 and (backups[0] / "model.safetensors").stat().st_mtime_ns == stamp
    assert third["previous_model"] == f"models/{backups[0].name}"  # relative: the run stays movable
    assert sft.read_metrics(out)["previous_model"] == third["previous_model"]

    # the command line (also the `accelerate launch -m twinlib.sft` entry point) reuses it too
    cli = sft.main(["--run-dir", str(small_run.root), "--set", "sft_batch_size=4", "--no-progress"])
    assert cli["reused"] is True and cli["steps"] == 3


def test_prompt_tests_table(small_run):
    from twinlib.modeling import has_model
    from twinlib.sft import load_splits, prompt_tests

    if not has_model(small_run.model("sft")):
        pytest.skip("needs the model of test_train_saves_reuses_and_never_overwrites_silently")
    test = load_splits(small_run)["test"]
    table = prompt_tests(small_run.model("sft"), test, n_prompts=2, n=5, seed=0,
                         extra_prompts=["Are you free on Saturday?"], profile="tiny")
    assert list(table.columns) == ["prompt", "real reply"] + [f"reply {i}" for i in range(1, 6)]
    assert len(table) == 3 and table["prompt"].iloc[-1] == "Are you free on Saturday?"
    assert set(table["prompt"].iloc[:2]) <= set(test["prompt"])
    assert table["real reply"].iloc[-1] == ""


# --------------------------------------------------------------------------- it learns the persona


@pytest.mark.slow
def test_finetuned_twin_carries_the_persona_style(sample_run):
    """Train the tiny model for real; its replies to held-out prompts must score clearly higher on the
    sample persona's own style markers than the untrained model's, and stop at the end of turn."""
    from twinlib.generation import generate_replies, settings_for
    from twinlib.modeling import get_profile, load_model
    from twinlib.sample_data import persona_style_score
    from twinlib.sft import load_splits, train_sft

    prof = get_profile("tiny")
    metrics = train_sft(sample_run, prof, max_steps=80, progress=False, seed=0)
    assert metrics["eval_loss"] < metrics["initial_eval_loss"] - 2.0

    held_out = load_splits(sample_run)["test"].sample(n=12, random_state=0)
    convs = list(zip(held_out["context"], held_out["prompt"]))
    scores, lengths = {}, {}
    for name in ("base", "sft"):
        model, tok = load_model(sample_run.model(name), device="cpu")
        replies = [r for rs in generate_replies(model, tok, convs, n=5, settings=settings_for(prof), seed=0)
                   for r in rs]
        scores[name] = statistics.mean(persona_style_score(r) for r in replies)
        lengths[name] = statistics.mean(len(tok(r)["input_ids"]) for r in replies)
    real = statistics.mean(persona_style_score(r) for r in held_out["response"])
    print(f"persona style: untrained {scores['base']:.3f}, fine-tuned {scores['sft']:.3f}, real replies {real:.3f}")
    assert scores["sft"] - scores["base"] >= 0.3, scores
    assert scores["sft"] >= 0.6 * real
    assert lengths["sft"] < 0.5 * prof.max_new_tokens  # it learned to stop; the untrained model rambles


@pytest.mark.slow
def test_notebook_02_runs_on_a_small_run(small_run, tmp_path):
    """Notebook 02 under papermill on a small run writes what the next stages read, and shows the loss curve."""
    import papermill as pm

    from twinlib import sft

    shutil.rmtree(small_run.model("sft"), ignore_errors=True)
    for p in small_run.models.glob("sft.bak-*"):
        shutil.rmtree(p)
    pm.execute_notebook(str(ROOT / "notebooks" / "02_supervised_finetuning.ipynb"), str(tmp_path / "02.ipynb"),
                        parameters={"run_dir": str(small_run.root), "max_steps": 3, "n_prompt_tests": 2,
                                    "custom_prompts": ["Are you free on Saturday?"]},
                        kernel_name="python3", progress_bar=False, cwd=str(ROOT))
    metrics = sft.read_metrics(small_run.model("sft"))
    assert metrics["steps"] == 3 and metrics["reused"] is False
    stage2 = json.loads((small_run.root / "stage2.json").read_text())
    assert stage2["metrics"]["steps"] == 3 and stage2["profile"] == "tiny"
    import pandas as pd

    tests = pd.read_csv(small_run.root / sft.PROMPT_TESTS_FILE, keep_default_na=False)
    assert len(tests) == 3 and [c for c in tests.columns if c.startswith("reply ")] == [f"reply {i}" for i in range(1, 6)]
    # the loss curve is shown inline as an image
    import nbformat

    nb = nbformat.read(str(tmp_path / "02.ipynb"), as_version=4)
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_a_model_trained_on_other_data_is_not_reused(small_run, tmp_path):
    """Notebook 01 re-run on another export (a new pairs.csv) with the same run_dir: stage 2 refuses
    to hand on the old twin and says what to do."""
    from twinlib import sft
    from twinlib.rundir import DataMismatchError

    run = RunDir(tmp_path / "run")
    shutil.copytree(small_run.root, run.root, ignore=shutil.ignore_patterns("sft", "sft.bak-*"))
    shutil.rmtree(run.model("base"))
    sft.prepare_base(run, "tiny")
    sft.train_sft(run, "tiny", max_steps=1, progress=False, patience=None)
    assert sft.train_sft(run, "tiny", max_steps=1, progress=False)["reused"] is True  # same data: reused
    pairs = run.pairs_csv.read_text(encoding="utf-8").splitlines()
    run.pairs_csv.write_text("\n".join(pairs[:-3]) + "\n", encoding="utf-8")  # other data
    with pytest.raises(DataMismatchError, match="new run_dir.*overwrite = True"):
        sft.train_sft(run, "tiny", max_steps=1, progress=False)
    with pytest.raises(DataMismatchError, match="other data"):
        sft.prepare_base(run, "tiny")
