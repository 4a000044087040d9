"""Chat with the twin: the session keeps context, the widget and the terminal loop drive it."""

from __future__ import annotations

import pytest

import twinlib.chat as chat
from twinlib.chat import ChatSession, chat_main, chat_widget, load_twin, pick_model

TEXTS = ["yeah saturday works for me 🌵", "haha sounds mint", "no stress, see you soon", "Are you free on Saturday?",
         "Did you see the film?", "keen as for dumplings", "Running late, sorry!"] * 5


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run whose ``models/sft`` is an (untrained) tiny model: enough to exercise chatting."""
    from twinlib.modeling import build_tiny_model

    run = tmp_path_factory.mktemp("chatrun")
    build_tiny_model(TEXTS, run / "models" / "sft")
    return run


@pytest.fixture(scope="module")
def tiny_model(tiny_run):
    from twinlib.modeling import load_model

    return load_model(tiny_run / "models" / "sft", device="cpu")


class FakeGenerate:
    """Stands in for generate_replies: records what the model was asked, answers by turn number."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, tok, conversations, n=1, **kw):
        self.calls.append([(list(ctx), prompt) for ctx, prompt in conversations])
        return [[f"reply {len(self.calls)}"] for _ in conversations]


def test_session_keeps_the_conversation_as_context(monkeypatch):
    fake = FakeGenerate()
    monkeypatch.setattr(chat, "generate_replies", fake)
    s = ChatSession(model=None, tokenizer=None, max_context_turns=3)
    assert s.reply("hi there") == "reply 1"
    assert s.reply("what are you up to?") == "reply 2"
    assert fake.calls[0] == [([], "hi there")]
    ctx, prompt = fake.calls[1][0]
    assert prompt == "what are you up to?"
    assert [(t["text"], t["me"]) for t in ctx] == [("hi there", False), ("reply 1", True)]
    s.reply("and tomorrow?")
    assert len(fake.calls[2][0][0]) == 3  # only the last max_context_turns turns
    assert s.transcript()[-1] == ("twin", "reply 3")
    s.reset()
    assert s.history == []
    with pytest.raises(ValueError):
        s.reply("   ")


def test_session_with_a_real_tiny_model(tiny_model):
    model, tok = tiny_model
    s = ChatSession(model, tok, seed=0)
    out = s.reply("Are you free on Saturday?")
    assert isinstance(out, str)
    s.reply("cool, see you then")
    assert len(s.history) == 4 and s.history[1]["me"] and not s.history[2]["me"]


def test_chat_widget_sends_and_resets(monkeypatch):
    monkeypatch.setattr(chat, "generate_replies", FakeGenerate())
    box = chat_widget(model=None, tokenizer=None)
    log = box.children[0]
    assert "Say something" in log.value
    box.text.value = "hello twin"  # Enter in the text box (continuous_update=False)
    assert box.text.value == ""
    assert [t["text"] for t in box.session.history] == ["hello twin", "reply 1"]
    assert "hello twin" in log.value and "reply 1" in log.value
    box.send_button.click()  # empty box: nothing sent
    assert len(box.session.history) == 2
    box.text.value = "<b>bold</b>"
    assert "&lt;b&gt;bold&lt;/b&gt;" in log.value  # escaped, not rendered
    box.reset_button.click()
    assert box.session.history == [] and "Say something" in log.value


def test_pick_model_is_the_measured_best(tmp_path):
    """Before stage 5 has measured: sft (never a later stage that has not been shown to beat it);
    after: the model eval/selection.json names."""
    import json

    for name in ("base", "sft", "dpo"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text("{}")
    assert pick_model(tmp_path)[0] == "sft"
    assert pick_model(tmp_path, "dpo")[0] == "dpo"
    with pytest.raises(FileNotFoundError, match="ppo"):
        pick_model(tmp_path, "ppo")
    with pytest.raises(ValueError):
        pick_model(tmp_path, "gpt")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "selection.json").write_text(json.dumps({"best": "dpo"}))
    assert pick_model(tmp_path)[0] == "dpo"
    (tmp_path / "eval" / "selection.json").write_text(json.dumps({"best": "ppo"}))  # no such model any more
    assert pick_model(tmp_path)[0] == "sft"


def test_chat_main_terminal_loop(tiny_run):
    said = iter(["Are you free on Saturday?", "", "/reset", "and sunday?", "/quit", "never read"])
    printed = []
    rc = chat_main(argv=["--run", str(tiny_run), "--seed", "0", "--max-new-tokens", "8"],
                   input_fn=lambda prompt: next(said), print_fn=lambda *a: printed.append(" ".join(map(str, a))))
    assert rc == 0
    assert sum(p.startswith("twin: ") for p in printed) == 2
    assert "(conversation cleared)" in printed and printed[-1] == "bye!"
    assert any("sft twin" in p for p in printed)


def test_chat_main_ends_on_eof_and_reports_missing_models(tiny_run, tmp_path):
    def eof(prompt):
        raise EOFError

    printed = []
    assert chat_main(tiny_run, model="sft", input_fn=eof, print_fn=printed.append) == 0
    assert printed[-1] == "bye!"
    printed.clear()
    assert chat_main(tmp_path, input_fn=eof, print_fn=printed.append) == 1
    assert "no trained twin" in printed[0]
    printed.clear()
    assert chat_main(tiny_run, model="ppo", input_fn=eof, print_fn=printed.append) == 1
    assert "ppo" in printed[0]


def test_load_twin_picks_and_loads(tiny_run):
    name, model, tok = load_twin(tiny_run)
    assert name == "sft" and tok.chat_template and not model.training
