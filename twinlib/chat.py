"""Chat with your twin: a notebook widget and a terminal loop, both keeping the conversation as context.

:class:`ChatSession` holds the conversation and asks the model for the twin's next reply with the
same layout used in training (:func:`twinlib.modeling.build_messages`: you are the *other*
person, the twin answers as the person). :func:`chat_widget` wraps it in ipywidgets;
:func:`chat_main` is ``python -m twinlib chat --run runs/NAME [--model ppo]``.
"""

from __future__ import annotations

import argparse
import html
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from twinlib.generation import GenerationSettings, generate_replies, settings_for
from twinlib.modeling import SYSTEM_PROMPT

PARTNER = "<PERSON_1>"
ME = "<ME>"


class ChatSession:
    """A conversation with the twin.

    ``history`` is a list of turns in the ``pairs.csv`` context format (``{"sender", "text",
    "me"}``, oldest first; ``me`` is the twin). Each :meth:`reply` sends the last
    ``max_context_turns`` turns as context, so the twin remembers what was said.
    """

    def __init__(self, model, tokenizer, settings: GenerationSettings | None = None, max_context_turns: int = 12,
                 max_prompt_tokens: int = 192, seed: int | None = None, system: str | None = SYSTEM_PROMPT):
        self.model, self.tokenizer = model, tokenizer
        self.settings = settings or GenerationSettings(num_return_sequences=1, no_repeat_ngram_size=2)
        self.max_context_turns = max_context_turns
        self.max_prompt_tokens = max_prompt_tokens
        self.seed = seed
        self.system = system
        self.history: list[dict] = []
        self._calls = 0

    def reply(self, message: str) -> str:
        """Send ``message`` (from you) and return the twin's answer; both join the history."""
        message = str(message).strip()
        if not message:
            raise ValueError("say something first: the message is empty")
        context = self.history[-self.max_context_turns:] if self.max_context_turns else []
        seed = None if self.seed is None else self.seed + self._calls
        out = generate_replies(self.model, self.tokenizer, [(context, message)], n=1, settings=self.settings,
                               seed=seed, max_prompt_tokens=self.max_prompt_tokens, system=self.system)
        answer = out[0][0] if out and out[0] else ""
        self._calls += 1
        self.history.append({"sender": PARTNER, "text": message, "me": False})
        self.history.append({"sender": ME, "text": answer, "me": True})
        return answer

    def reset(self) -> None:
        """Forget the conversation."""
        self.history.clear()

    def transcript(self) -> list[tuple[str, str]]:
        """``[("you" | "twin", text), ...]``."""
        return [("twin" if t["me"] else "you", t["text"]) for t in self.history]


def _transcript_html(session: ChatSession) -> str:
    rows = []
    for who, text in session.transcript():
        align, bg = ("left", "#eef3fb") if who == "twin" else ("right", "#e8f6e8")
        shown = html.escape(text) if text else "<i>(no reply)</i>"
        rows.append(f"<div style='text-align:{align}'><span style='display:inline-block;background:{bg};"
                    f"padding:4px 8px;border-radius:8px;margin:2px;white-space:pre-wrap'><b>{who}:</b> {shown}</span></div>")
    if not rows:
        rows.append("<i>Say something to your twin…</i>")
    return "<div style='max-height:320px;overflow-y:auto'>" + "".join(rows) + "</div>"


def chat_widget(model, tokenizer, settings: GenerationSettings | None = None, **session_kw):
    """A small chat box for the notebook: type, press Enter or *Send*, *Reset* to start over.

    Returns an ``ipywidgets.VBox`` whose ``session`` attribute is the :class:`ChatSession`
    (handy for tests and for reading the transcript afterwards). Nothing blocks: a papermill run
    displays the box and goes on.
    """
    import ipywidgets as w

    session = ChatSession(model, tokenizer, settings=settings, **session_kw)
    log = w.HTML(_transcript_html(session))
    text = w.Text(placeholder="your message…", continuous_update=False, layout=w.Layout(width="60%"))
    send = w.Button(description="Send", button_style="primary")
    reset = w.Button(description="Reset")
    status = w.HTML()

    def do_send(_=None):
        msg = text.value.strip()
        if not msg:
            return
        text.value = ""
        status.value = "<i>the twin is typing…</i>"
        try:
            session.reply(msg)
            status.value = ""
        except Exception as e:  # noqa: BLE001 — show it in the widget rather than lose it in a callback
            status.value = f"<span style='color:#b00'>{html.escape(type(e).__name__)}: {html.escape(str(e))}</span>"
        log.value = _transcript_html(session)

    def on_value(change):
        if change["new"].strip():
            do_send()

    def do_reset(_=None):
        session.reset()
        log.value = _transcript_html(session)

    send.on_click(do_send)
    reset.on_click(do_reset)
    text.observe(on_value, names="value")  # Enter (continuous_update=False) sends
    box = w.VBox([log, w.HBox([text, send, reset]), status])
    box.session = session
    box.text, box.send_button, box.reset_button = text, send, reset
    return box


# --------------------------------------------------------------------------- terminal


def pick_model(run_dir, model: str | None = None) -> tuple[str, str]:
    """``(name, path)`` of the model to chat with: ``model`` or the run's best by measurement
    (:func:`twinlib.evaluation.run_best_model`: stage 5's validation fidelity; ``sft`` before stage 5)."""
    from twinlib.evaluation import available_models, run_best_model

    found = available_models(run_dir, [model] if model else None)  # an unknown or missing model is an error
    name = model or run_best_model(run_dir)
    if name is None:
        raise FileNotFoundError(
            f"{Path(run_dir) / 'models'} holds no trained twin (sft, refined, ppo or dpo): run notebook 02 first "
            f"(python -m twinlib run --run-dir {run_dir} ...)."
        )
    return name, found[name]


def load_twin(run_dir, model: str | None = None):
    """``(name, model, tokenizer)`` of the run's twin: ``model`` or the best one by measurement."""
    from twinlib.evaluation import load_quietly

    name, path = pick_model(run_dir, model)
    m, tok = load_quietly(path)
    return name, m, tok


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m twinlib chat", description="Chat with your twin in the terminal.")
    ap.add_argument("--run", required=True, help="the run directory")
    ap.add_argument("--model", default=None, help="base, sft, refined, ppo or dpo (default: the most trained)")
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    return ap


HELP = "Type a message and press Enter. /reset starts over, /quit (or Ctrl-D) leaves."


def chat_main(
    run_dir=None,
    model: str | None = None,
    argv: Sequence[str] | None = None,
    input_fn: Callable[[str], str] = input,
    print_fn: Callable[..., None] = print,
    settings: GenerationSettings | None = None,
    seed: int | None = None,
) -> int:
    """The terminal chat: read a line, print the twin's reply, keep the conversation as context.

    ``run_dir``/``model`` as from the CLI, or ``argv`` (``["--run", DIR, "--model", "sft"]``).
    ``input_fn``/``print_fn`` are injectable for tests. Returns the exit status (0 ok, 1 when the
    run has no model to chat with).
    """
    from twinlib.modeling import later_stage_profile

    over = {}
    if argv is not None:
        args = _parser().parse_args(list(argv))
        run_dir, model = args.run, args.model or model
        seed = args.seed if args.seed is not None else seed
        over = {k: v for k, v in (("temperature", args.temperature), ("max_new_tokens", args.max_new_tokens)) if v is not None}
    if run_dir is None:
        print_fn("twin chat: which run? pass --run runs/NAME")
        return 1
    try:
        name, path = pick_model(run_dir, model)
    except (FileNotFoundError, ValueError) as e:
        print_fn(f"twin chat: {e}")
        return 1
    prof = later_stage_profile("auto", run_dir)
    settings = replace(settings, **over) if settings else settings_for(prof, num_return_sequences=1, **over)
    print_fn(f"Loading the {name} twin from {path} …")
    _, m, tok = load_twin(run_dir, name)
    session = ChatSession(m, tok, settings=settings, max_prompt_tokens=prof.max_prompt_tokens, seed=seed)
    print_fn(HELP)
    while True:
        try:
            line = input_fn("you: ")
        except (EOFError, KeyboardInterrupt):
            print_fn("")
            break
        line = (line or "").strip()
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            break
        if line == "/reset":
            session.reset()
            print_fn("(conversation cleared)")
            continue
        if line in ("/help", "/?"):
            print_fn(HELP)
            continue
        print_fn(f"twin: {session.reply(line) or '…'}")
    print_fn("bye!")
    return 0
