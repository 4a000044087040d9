"""The OpenAI-compatible server: the real CLI on a loopback port, driven by the official ``openai`` client.

One server process for the module (``python -m twinlib serve`` on the toy run's ``models/sft``,
an API key set), always stopped by the fixture. Plain and streamed completions, 20 concurrent
requests, malformed requests (each a 400 with a message, and the server keeps serving), a wrong
key (401). The pieces under it — the messages → prompt layout, the stop-string scanner, the
seeded sampler — are checked directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from twinlib.browser import stop_process_group
from twinlib.serve import (ChatRequest, RequestError, SeededSampler, StopScanner, conversation_from_messages,
                           cut_at_stop, free_port, parse_chat_request)

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-123"
MAX_BYTES = 8192


# --------------------------------------------------------------------------- pieces, no server


def test_messages_become_the_training_layout():
    ctx, prompt = conversation_from_messages([
        {"role": "system", "content": "you are a helpful assistant"},   # dropped: the twin keeps its own
        {"role": "user", "content": "hey"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": [{"type": "text", "text": "what should"}, {"type": "text", "text": "we eat?"}]},
    ])
    assert ctx == [{"sender": "<PERSON_1>", "text": "hey", "me": False}, {"sender": "<ME>", "text": "yo", "me": True}]
    assert prompt == "what should\nwe eat?"
    with pytest.raises(RequestError, match="last message must be the user's"):
        conversation_from_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    with pytest.raises(RequestError, match="only system"):
        conversation_from_messages([{"role": "system", "content": "be nice"}])
    with pytest.raises(RequestError, match="reads text only"):
        conversation_from_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"messages": "hi"}', "messages: Input should be a valid list"),
    (b'{"messages": []}', "messages: List should have at least 1 item"),
    (b'{"messages": [{"role": "robot", "content": "hi"}]}', "messages.0.role"),
    (b'{"messages": [{"role": "user", "content": 5}]}', "messages.0.content"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 7}', "temperature"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "stream"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}', "at most 4"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}', "does not call tools"),
])
def test_malformed_bodies_are_named(body, fragment):
    with pytest.raises(RequestError) as e:
        parse_chat_request(body)
    assert e.value.status == 400 and fragment in e.value.message


def test_unknown_openai_fields_are_ignored():
    req = parse_chat_request(json.dumps({"model": "twin", "messages": [{"role": "user", "content": "hi", "name": "x"}],
                                         "user": "abc", "presence_penalty": 0, "parallel_tool_calls": False}).encode())
    assert isinstance(req, ChatRequest) and req.messages[0].content == "hi"


def test_stop_scanner_holds_back_a_possible_stop():
    s = StopScanner(["STOP"])
    assert s.feed("hello ST") == "hello"   # "ST" might start "STOP"
    assert s.feed("OP and more") == " " and s.stopped
    assert s.feed("ignored") == "" and s.flush() == ""
    s = StopScanner(["xyz"])
    assert s.feed("ab") == "" and s.feed("cd") == "ab" and s.flush() == "cd"
    assert cut_at_stop("one\ntwo", ["\n"]) == ("one", True)
    assert cut_at_stop("one two", []) == ("one two", False)


def test_seeded_sampler_draws_from_the_softmax():
    """Gumbel-max with transformers' warpers: same distribution as do_sample, own generator, seedable."""
    import torch

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    draws = SeededSampler(temperature=1.0, seed=0)(None, logits.repeat(4000, 1)).argmax(-1)  # 4000 draws at once
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert torch.allclose(freq, torch.softmax(logits, -1)[0], atol=0.03), freq
    again = SeededSampler(temperature=1.0, seed=0)(None, logits.repeat(20, 1)).argmax(-1)
    assert again.tolist() == draws[:20].tolist()  # the same seed, the same draws
    hot = SeededSampler(temperature=2.0, seed=0)(None, logits.repeat(4000, 1)).argmax(-1)
    assert torch.allclose(torch.bincount(hot, minlength=4).float() / 4000, torch.softmax(logits / 2, -1)[0], atol=0.03)
    top = SeededSampler(temperature=1.0, top_p=0.5, seed=1)  # top-p 0.5 keeps the first token only
    assert set(top(None, logits.repeat(50, 1)).argmax(-1).tolist()) == {0}


def test_best_is_the_measured_model(toy_run, tmp_path):
    """--model best serves what stage 5 measured best (eval/selection.json), sft before that."""
    import json
    import shutil

    from twinlib.serve import best_model_name, resolve_model

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    assert best_model_name(run) == "sft" and resolve_model(run, "best")[0] == "sft"
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "selection.json").write_text(json.dumps({"best": "base"}))  # the toy run has no models/base
    assert best_model_name(run) == "sft"  # a choice that names no model of the run is ignored
    with pytest.raises(ValueError, match="unknown model"):
        resolve_model(run, "gpt-4")


def test_it_listens_on_this_machine_only_unless_told():
    from twinlib.serve import build_parser

    args = build_parser().parse_args(["--run", "runs/x"])
    assert args.host == "127.0.0.1" and args.api_key is None and args.model == "best"


def test_cli_says_what_is_missing(tmp_path, capsys):
    from twinlib.cli import main

    assert main(["serve", "--run", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--run", str(tmp_path), "--model", "ppo"]) == 1
    assert "has no 'ppo' model" in capsys.readouterr().err


# --------------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def server(toy_run, tmp_path_factory):
    """``python -m twinlib serve`` on a free loopback port with an API key; always stopped."""
    import httpx

    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TWIN_API_KEY", None)
    cmd = [sys.executable, "-m", "twinlib", "serve", "--run", str(toy_run), "--model", "sft", "--port", str(port),
           "--api-key", KEY, "--workers", "2", "--max-request-bytes", str(MAX_BYTES), "--max-input-chars", "2000",
           "--no-turing"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield {"base": base, "proc": proc, "log": log}
    finally:
        stop_process_group(proc)


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server["base"] + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def greedy_reference(toy_run):
    """What the run's model says greedily to a conversation laid out by twinlib.modeling (in this process)."""
    import torch

    from twinlib.modeling import end_of_turn_ids, load_model, prompt_text

    model, tok = load_model(Path(toy_run) / "models" / "sft", device="cpu", dtype=torch.float32)
    ctx = [{"sender": "<PERSON_1>", "text": "hey", "me": False}, {"sender": "<ME>", "text": "yo", "me": True}]
    text = prompt_text(tok, ctx, "what should we eat?", max_tokens=192)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=40,
                             eos_token_id=end_of_turn_ids(tok), pad_token_id=tok.pad_token_id, no_repeat_ngram_size=2)
    return {"reply": tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip(), "prompt_tokens": ids.shape[1]}


CONVERSATION = [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "what should we eat?"}]


def test_models_and_a_plain_completion(client, greedy_reference):
    assert [m.id for m in client.models.list().data] == ["twin"]
    r = client.chat.completions.create(model="twin", messages=CONVERSATION, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    # the earlier messages are the twin's context, laid out exactly as in training
    assert r.choices[0].message.content == greedy_reference["reply"]
    assert r.usage.prompt_tokens == greedy_reference["prompt_tokens"]
    assert r.choices[0].finish_reason in ("stop", "length")
    sampled = client.chat.completions.create(model="twin", messages=CONVERSATION)  # the profile's temperature
    assert isinstance(sampled.choices[0].message.content, str) and sampled.usage.completion_tokens >= 1


def test_a_streamed_completion(client, greedy_reference):
    stream = client.chat.completions.create(model="twin", messages=CONVERSATION, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == greedy_reference["reply"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == greedy_reference["prompt_tokens"]
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) >= 2  # it really streams


def test_seed_and_stop(client):
    ask = dict(model="twin", messages=[{"role": "user", "content": "any plans for the weekend?"}], temperature=1.0)
    a = client.chat.completions.create(seed=7, **ask).choices[0].message.content
    b = client.chat.completions.create(seed=7, **ask).choices[0].message.content
    assert a == b
    first_word = client.chat.completions.create(model="twin", messages=CONVERSATION, temperature=0, stop=[" "])
    assert " " not in first_word.choices[0].message.content and first_word.choices[0].finish_reason == "stop"


def test_twenty_concurrent_requests_are_all_answered(client, server):
    import httpx

    prompts = [f"{q} ({i})" for i, q in enumerate(["are you hungry?", "where are you?", "how was work today?",
                                                    "you still awake?"] * 5)]

    def ask(p):
        r = client.chat.completions.create(model="twin", messages=[{"role": "user", "content": p}], max_tokens=24)
        return r.id, r.choices[0].message.content

    health = []
    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(ask, p) for p in prompts]
        while not all(f.done() for f in futures):  # the event loop stays free while the model writes
            t0 = time.monotonic()
            assert httpx.get(server["base"] + "/health", timeout=5).status_code == 200
            health.append(time.monotonic() - t0)
            time.sleep(0.05)
        results = [f.result() for f in futures]
    assert len(results) == 20 and len({rid for rid, _ in results}) == 20
    assert all(isinstance(text, str) for _, text in results)
    assert health and max(health) < 2.0, health


def _post(server, body=None, raw=None, key=KEY, headers=None):
    import httpx

    h = {"Authorization": f"Bearer {key}"} if key else {}
    h.update(headers or {})
    if raw is not None:
        h.setdefault("Content-Type", "application/json")
        return httpx.post(server["base"] + "/v1/chat/completions", content=raw, headers=h, timeout=60)
    return httpx.post(server["base"] + "/v1/chat/completions", json=body, headers=h, timeout=60)


def test_malformed_requests_get_a_clear_400_and_the_server_goes_on(server):
    cases = {
        "bad json": (None, b'{"messages": [', "not valid JSON"),
        "wrong types": ({"messages": [{"role": "user", "content": ["hi"]}]}, None, "messages.0.content"),
        "wrong role": ({"messages": [{"role": "bot", "content": "hi"}]}, None, "messages.0.role"),
        "temperature": ({"messages": [{"role": "user", "content": "hi"}], "temperature": "warm"}, None, "temperature"),
        "too many characters": ({"messages": [{"role": "user", "content": "x" * 2500}]}, None, "at most 2000"),
        "body too large": (None, json.dumps({"messages": [{"role": "user", "content": "y" * MAX_BYTES}]}).encode(),
                           f"at most {MAX_BYTES}"),
        "max_tokens too big": ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100_000}, None,
                               "at most"),
        "assistant last": ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
                           None, "last message must be the user's"),
    }
    for name, (body, raw, fragment) in cases.items():
        r = _post(server, body=body, raw=raw)
        assert r.status_code == 400, (name, r.status_code, r.text)
        err = r.json()["error"]
        assert fragment in err["message"] and err["type"] == "invalid_request_error", (name, err)
    unknown = _post(server, body={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert unknown.status_code == 404 and "not served here" in unknown.json()["error"]["message"]
    ok = _post(server, body={"model": "twin", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["role"] == "assistant"


def test_a_wrong_api_key_gets_401(server, client):
    from openai import AuthenticationError, OpenAI

    wrong = OpenAI(base_url=server["base"] + "/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(AuthenticationError):
        wrong.models.list()
    for key in ("not-the-key", None):
        r = _post(server, body={"messages": [{"role": "user", "content": "hi"}]}, key=key)
        assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
    assert client.models.list().data  # the right key still works
