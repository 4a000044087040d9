"""Talk to the twin from anywhere: an OpenAI-compatible HTTP server.

``python -m twinlib serve --run runs/NAME`` loads one model of a run and answers

* ``GET  /v1/models``: the one model served (``twin``), and
* ``POST /v1/chat/completions``: a chat completion, plain or streamed (server-sent events),

so chat front-ends and scripts that speak the OpenAI API (the official ``openai`` client, Open
WebUI, LibreChat, editors' assistants...) can talk to the twin. The same server hosts the live
Turing test's pages (:mod:`twinlib.live_turing`).

How a request becomes a prompt. The request's messages are the conversation: ``user`` messages are
the other person, ``assistant`` messages are the twin (that is, you), and the last message must be
the user's — the one the twin answers. They go through :func:`twinlib.modeling.prompt_text`, the
layout used in training, with the oldest turns dropped to fit the profile's ``max_prompt_tokens``.
``system`` (and ``developer``) messages are ignored: the twin keeps the system prompt it was trained
with, since another one would only make it less like you.

Defaults come from the run's profile (:func:`twinlib.modeling.later_stage_profile` and
:func:`twinlib.generation.settings_for`): ``temperature``, ``top_p`` and ``max_tokens``; a request
may set them (``temperature: 0`` is greedy). ``seed`` gives a reproducible reply: every request
samples with its own random generator (the Gumbel-max form of sampling, :class:`SeededSampler`),
so concurrent requests never share one.

Safety. It binds to 127.0.0.1 unless told otherwise; ``--api-key`` (or ``TWIN_API_KEY``) makes
``/v1`` ask for ``Authorization: Bearer KEY`` (401 otherwise). A malformed request — bad JSON,
wrong types, unknown roles, too many messages or characters, a body over ``--max-request-bytes``
— gets a 400 with a message that names the problem, in OpenAI's error shape. Generation runs in a
pool of worker threads (``--workers``), off the event loop: the server keeps answering while the
model writes, and one slow request holds one worker, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Sequence

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from twinlib.generation import GenerationSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MODEL_ID = "twin"
MODEL_CHOICES = ("best", "base", "sft", "refined", "ppo", "dpo")
MAX_REQUEST_BYTES = 256 * 1024   # the whole JSON body
MAX_MESSAGES = 200               # messages in one request
MAX_INPUT_CHARS = 32_000         # characters of text over all messages
MAX_CHOICES = 4                  # ``n``
MAX_QUEUE = 256                  # requests waiting for a worker before the server answers 503


# --------------------------------------------------------------------------- which model


def best_model_name(run_dir) -> str | None:
    """The model that ``--model best`` serves: the run's best by measurement
    (:func:`twinlib.evaluation.run_best_model`: stage 5's validation fidelity, ``sft`` before
    stage 5 has measured), as chat and the report use."""
    from twinlib.evaluation import run_best_model

    return run_best_model(run_dir)


def resolve_model(run_dir, model: str = "best") -> tuple[str, str]:
    """``(name, checkpoint)`` of the model to serve: ``model`` or, for ``"best"``, :func:`best_model_name`."""
    from twinlib.evaluation import available_models

    if model not in MODEL_CHOICES:
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODEL_CHOICES)}.")
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"the run directory {run_dir} does not exist: pass --run runs/NAME of a finished run.")
    found = available_models(run_dir)
    name = best_model_name(run_dir) if model == "best" else model
    if name is None:
        raise FileNotFoundError(f"{Path(run_dir) / 'models'} holds no trained twin (sft, refined, ppo or dpo): "
                                f"run notebook 02 first (python -m twinlib run --run-dir {run_dir} ...).")
    if name not in found:
        raise FileNotFoundError(f"{Path(run_dir) / 'models'} has no {name!r} model (found: {list(found) or 'none'}); "
                                f"pick one of those with --model.")
    return name, found[name]


# --------------------------------------------------------------------------- requests


class RequestError(ValueError):
    """A request the server cannot answer; becomes an OpenAI-style error response."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.kind, self.code = message, param, status, kind, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self, index: int) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for j, p in enumerate(self.content):
            if p.type != "text" or p.text is None:
                raise RequestError(f"messages[{index}].content[{j}] is a {p.type!r} part: the twin reads text only.",
                                   param=f"messages.{index}.content.{j}")
            parts.append(p.text)
        return "\n".join(parts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    include_usage: bool | None = None


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat-completion request the twin uses; others are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")
    model: str | None = None
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)   # accepted, not used
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)  # accepted, not used
    logprobs: bool | None = None
    tools: list | None = None
    functions: list | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        if v is None:
            return None
        stops = [v] if isinstance(v, str) else list(v)
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        return stops


def _validation_message(err: ValidationError) -> tuple[str, str | None]:
    """One readable line from pydantic's errors, and the first field it names."""
    lines, first = [], None
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()))
        first = first or loc or None
        lines.append(f"{loc or 'body'}: {e.get('msg')}")
    return "invalid request: " + "; ".join(lines), first


def parse_chat_request(body: bytes, max_chars: int = MAX_INPUT_CHARS) -> ChatRequest:
    """Decode and check a chat-completion body, raising :class:`RequestError` (400) with a clear message."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(f"the body is not valid JSON: {e}. Send a JSON object such as "
                           '{"model": "twin", "messages": [{"role": "user", "content": "hi"}]}.') from None
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {type(data).__name__}.")
    try:
        req = ChatRequest.model_validate(data)
    except ValidationError as e:
        msg, param = _validation_message(e)
        raise RequestError(msg, param=param) from None
    if req.tools or req.functions:
        raise RequestError("the twin does not call tools: leave out 'tools' and 'functions'.", param="tools")
    if req.logprobs:
        raise RequestError("logprobs are not supported.", param="logprobs")
    total = sum(len(m.text(i)) for i, m in enumerate(req.messages))
    if total > max_chars:
        raise RequestError(f"the messages hold {total} characters; this server takes at most {max_chars}. "
                           "Send fewer or shorter messages (the twin only reads the last few turns anyway).",
                           param="messages", code="input_too_long")
    return req


def conversation_from_messages(messages: Sequence[Message] | Sequence[dict]) -> tuple[list[dict], str]:
    """``(context, prompt)`` for :func:`twinlib.modeling.build_messages` from OpenAI-style messages.

    ``user`` messages are the other person, ``assistant`` messages are the twin (``me``); system
    and developer messages are dropped (the twin keeps its trained system prompt). The last
    non-system message must be the user's: it is the message the twin answers.
    """
    msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
    turns = []
    for i, m in enumerate(msgs):
        if m.role in ("system", "developer"):
            continue
        turns.append({"sender": "<ME>" if m.role == "assistant" else "<PERSON_1>", "text": m.text(i),
                      "me": m.role == "assistant", "index": i})
    if not turns:
        raise RequestError("no user message to answer: the messages hold only system instructions.", param="messages")
    last = turns[-1]
    if last["me"]:
        raise RequestError("the last message must be the user's (role 'user'): the twin answers it.",
                           param=f"messages.{last['index']}.role")
    if not last["text"].strip():
        raise RequestError("the last user message is empty: say something for the twin to answer.",
                           param=f"messages.{last['index']}.content")
    context = [{k: t[k] for k in ("sender", "text", "me")} for t in turns[:-1]]
    return context, last["text"]


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Sampling(GenerationSettings):
    """What one request asks of the model: the stages' sampling settings (defaults: the run's
    profile), a seed and stop strings. The number of choices is the request's ``n``."""

    num_return_sequences: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def as_kwargs(self) -> dict:
        """The ``generate`` keywords: the stages' settings, without the server's own seed and stop."""
        return GenerationSettings.as_kwargs(GenerationSettings(**{k: v for k, v in asdict(self).items()
                                                                   if k not in ("seed", "stop")}))


@dataclass
class Completion:
    text: str
    tokens: int
    finish_reason: str  # "stop" or "length"


class SeededSampler:
    """Sampling as a logits processor with its own random generator (Gumbel-max).

    ``argmax(logits / T + Gumbel noise)`` over the tokens that survive top-k/top-p is a draw from
    the same distribution as ``do_sample=True``, but with a ``torch.Generator`` of the request's
    own instead of torch's global one: concurrent requests never disturb each other's random
    stream, and a ``seed`` gives the same reply every time. The temperature and filters are
    transformers' own warpers; generation itself then runs greedy.
    """

    def __init__(self, temperature: float, top_p: float = 1.0, top_k: int = 0, seed: int | None = None):
        import torch
        from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                            TopPLogitsWarper)

        self.warpers = [TemperatureLogitsWarper(temperature)]
        if top_k:
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        self.generator = torch.Generator().manual_seed(secrets.randbits(63) if seed is None else int(seed))

    def __call__(self, input_ids, scores):
        import torch

        for w in self.warpers:
            scores = w(input_ids, scores)
        u = torch.rand(scores.shape, generator=self.generator, dtype=torch.float32).to(scores.device)
        exponential = -torch.log(u.clamp_min(1e-20))          # Exp(1) noise
        gumbel = -torch.log(exponential.clamp_min(1e-20))     # Gumbel(0, 1) noise
        return scores.float() + gumbel


class _Cancel:
    """A stopping criterion that ends generation once ``event`` is set (client gone, stop string seen)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kw):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class StopScanner:
    """Cut streamed text at the first stop sequence, holding back what may be the start of one."""

    def __init__(self, stops: Sequence[str] = ()):
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The text that may be sent now."""
        if self.stopped:
            return ""
        self.buffer += text
        if not self.stops:
            out, self.buffer = self.buffer, ""
            return out
        cut = min((i for i in (self.buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self.buffer, self.stopped = self.buffer[:cut], "", True
            return out
        keep = min(self.hold, len(self.buffer))
        out = self.buffer[: len(self.buffer) - keep]
        self.buffer = self.buffer[len(self.buffer) - keep:]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    s = StopScanner(stops)
    out = s.feed(text)
    return (out if s.stopped else out + s.flush()), s.stopped


class TwinEngine:
    """One loaded model of a run and how to ask it, shared by every request.

    Thread-safe: tokenization holds a lock (fast tokenizers are not re-entrant when their
    truncation settings change), each generation has its own sampler and stopping criteria, and
    the model is in eval mode under ``torch.no_grad``.
    """

    def __init__(self, model, tokenizer, name: str = "twin", profile=None, settings=None,
                 system: str | None = None, max_prompt_tokens: int | None = None):
        from twinlib.modeling import SYSTEM_PROMPT, end_of_turn_ids

        self.model, self.tokenizer, self.name, self.profile = model, tokenizer, name, profile
        self.settings = settings or GenerationSettings(num_return_sequences=1)
        self.system = SYSTEM_PROMPT if system is None else system
        self.max_prompt_tokens = max_prompt_tokens or (profile.max_prompt_tokens if profile else 192)
        self.stop_ids = end_of_turn_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        ctx = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        self.max_new_tokens_limit = max(1, min(1024, (ctx or 2048) - self.max_prompt_tokens))
        self._lock = threading.Lock()
        self.created = int(time.time())

    @classmethod
    def from_run(cls, run_dir, model: str = "best", device: str | None = None) -> "TwinEngine":
        """Load ``model`` (``best``, ``sft``...) of ``run_dir`` with the run's profile and settings."""
        from twinlib.generation import settings_for
        from twinlib.modeling import later_stage_profile, load_model

        name, path = resolve_model(run_dir, model)
        profile = later_stage_profile("auto", run_dir)
        m, tok = load_model(path, device=device)
        return cls(m, tok, name=name, profile=profile, settings=settings_for(profile, num_return_sequences=1))

    def defaults(self) -> Sampling:
        return Sampling(**{**asdict(self.settings), "num_return_sequences": 1})

    def encode(self, context, prompt: str) -> list[int]:
        """Token ids of the conversation in the training layout, the assistant (twin) turn opened."""
        from twinlib.modeling import prompt_text

        with self._lock:
            text = prompt_text(self.tokenizer, context, prompt, system=self.system, max_tokens=self.max_prompt_tokens)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[-self.max_prompt_tokens:]

    def generate(self, ids: list[int], sampling: Sampling, n: int = 1, on_text: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> list[Completion]:
        """``n`` replies to the prompt ``ids``; ``on_text`` receives the first one's text as it is written."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        cancel = cancel or threading.Event()
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        config = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=sampling.max_new_tokens, num_return_sequences=n,
            eos_token_id=self.stop_ids, pad_token_id=self.pad_id,
            no_repeat_ngram_size=sampling.no_repeat_ngram_size or 0,
            repetition_penalty=sampling.repetition_penalty or 1.0,
        )
        processors = LogitsProcessorList()
        if sampling.temperature > 0:
            processors.append(SeededSampler(sampling.temperature, sampling.top_p, sampling.top_k, sampling.seed))
        elif n > 1:
            raise RequestError("n > 1 needs a temperature above 0: greedy replies are all the same.", param="n")
        streamer = _text_streamer(self.tokenizer, on_text) if on_text is not None else None
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      generation_config=config, logits_processor=processors,
                                      stopping_criteria=StoppingCriteriaList([_Cancel(cancel)]), streamer=streamer)
        results = []
        stop = set(self.stop_ids)
        for seq in out[:, input_ids.shape[1]:].tolist():
            ended = next((i for i, t in enumerate(seq) if t in stop), None)
            body = seq if ended is None else seq[:ended]
            text = self.tokenizer.decode(body, skip_special_tokens=True).strip()
            finish = "stop" if ended is not None or cancel.is_set() else (
                "length" if len(seq) >= sampling.max_new_tokens else "stop")
            results.append(Completion(text, len(body) + (ended is not None), finish))
        return results

    def reply(self, messages, **overrides) -> str:
        """The twin's answer to OpenAI-style ``messages`` (a convenience for scripts and tests)."""
        context, prompt = conversation_from_messages(messages)
        return self.generate(self.encode(context, prompt), replace(self.defaults(), **overrides))[0].text


_STREAMER_CLASS = None


def _text_streamer(tokenizer, callback: Callable[[str], None]):
    """transformers' TextStreamer (whole words, multi-byte characters kept whole) feeding ``callback``."""
    global _STREAMER_CLASS
    if _STREAMER_CLASS is None:
        from transformers import TextStreamer

        class CallbackStreamer(TextStreamer):
            def __init__(self, tokenizer, callback):
                super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
                self.callback = callback

            def on_finalized_text(self, text: str, stream_end: bool = False):
                if text:
                    self.callback(text)

        _STREAMER_CLASS = CallbackStreamer
    return _STREAMER_CLASS(tokenizer, callback)


# --------------------------------------------------------------------------- the app


@dataclass
class ServeConfig:
    api_key: str | None = None
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_input_chars: int = MAX_INPUT_CHARS
    workers: int = 2
    max_queue: int = MAX_QUEUE
    model_id: str = MODEL_ID
    extra_model_ids: tuple[str, ...] = field(default_factory=tuple)


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
           code: str | None = None, headers: dict | None = None):
    return JSONResponse(RequestError(message, param, status, kind, code).body(), status_code=status, headers=headers)


async def read_body(request, limit: int) -> bytes:
    """The request body, refusing (400) one over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError("the Content-Length header is not a number.") from None
        if size > limit:
            raise RequestError(f"the request body is {size} bytes; this server takes at most {limit}.",
                               code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body is over {limit} bytes, the most this server takes.",
                               code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(engine: TwinEngine, config: ServeConfig | None = None, turing=None):
    """The FastAPI application: ``/v1`` for programs, ``/turing`` (when ``turing`` is given) for people.

    ``turing`` is a :class:`twinlib.live_turing.LiveTuring`; its pages and API are mounted on the
    same server. The caller runs the app (``uvicorn.run(app, ...)`` or :func:`serve_main`).
    """
    from contextlib import asynccontextmanager


    config = config or ServeConfig()
    executor = ThreadPoolExecutor(max_workers=max(1, config.workers), thread_name_prefix="twin-generate")
    state = {"waiting": 0}
    ids = {config.model_id, engine.name, f"{config.model_id}-{engine.name}", *config.extra_model_ids}

    @asynccontextmanager
    async def lifespan(app):
        if turing is not None:
            turing.attach(asyncio.get_running_loop(), executor)
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="twin", description="Your digital twin, behind an OpenAI-compatible API.",
                  version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.config, app.state.executor = engine, config, executor

    @app.exception_handler(RequestError)
    async def _request_error(request, exc: RequestError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, str(exc.detail), kind=kind)

    @app.exception_handler(Exception)
    async def _crash(request, exc):  # the last resort: say what happened, in the API's shape
        return _error(500, f"the server failed on this request: {type(exc).__name__}: {exc}", kind="server_error")

    async def check_key(request: Request):
        if not config.api_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise RequestError("missing or wrong API key: send 'Authorization: Bearer <key>' with the key the "
                               "server was started with (--api-key or TWIN_API_KEY).", status=401,
                               kind="authentication_error", code="invalid_api_key")

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(check_key)])

    def model_card() -> dict:
        return {"id": config.model_id, "object": "model", "created": engine.created, "owned_by": "you",
                "twin_model": engine.name}

    @v1.get("/models")
    async def list_models():
        return {"object": "list", "data": [model_card()]}

    @v1.get("/models/{model_id}")
    async def get_model(model_id: str):
        if model_id not in ids:
            return _error(404, f"the model {model_id!r} is not served here; this server serves {config.model_id!r}.",
                          kind="not_found_error", param="model", code="model_not_found")
        return model_card()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": engine.name, "waiting": state["waiting"]}

    async def run_in_worker(fn, *args):
        if state["waiting"] >= config.max_queue:
            raise RequestError(f"the server is busy ({state['waiting']} requests waiting): try again shortly.",
                               status=503, kind="server_busy")
        state["waiting"] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        finally:
            state["waiting"] -= 1

    def plan(req: ChatRequest) -> tuple[list[dict], str, Sampling, int]:
        if req.model is not None and req.model not in ids:
            raise RequestError(f"the model {req.model!r} is not served here; use {config.model_id!r} "
                               f"(GET /v1/models lists it).", param="model", status=404, kind="not_found_error",
                               code="model_not_found")
        context, prompt = conversation_from_messages(req.messages)
        s = engine.defaults()
        max_new = req.max_completion_tokens or req.max_tokens or s.max_new_tokens
        if max_new > engine.max_new_tokens_limit:
            raise RequestError(f"max_tokens is {max_new}; this model writes at most {engine.max_new_tokens_limit} "
                               "tokens per reply.", param="max_tokens")
        s = replace(s, max_new_tokens=max_new, seed=req.seed, stop=tuple(req.stop or ()),
                    temperature=s.temperature if req.temperature is None else req.temperature,
                    top_p=s.top_p if req.top_p is None else req.top_p)
        n = req.n or 1
        if req.stream and n > 1:
            raise RequestError("streaming answers one choice: leave n out (or 1) with stream=true.", param="n")
        if n > 1 and s.temperature == 0:
            raise RequestError("n > 1 needs a temperature above 0: greedy replies are all the same.", param="n")
        return context, prompt, s, n

    @v1.post("/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request, config.max_request_bytes)
        req = parse_chat_request(body, config.max_input_chars)
        context, prompt, sampling, n = plan(req)
        ids_ = await run_in_worker(engine.encode, context, prompt)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_sse(engine, run_in_worker, ids_, sampling, cid, created, config.model_id,
                                          include_usage),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        outs = await run_in_worker(engine.generate, ids_, replace(sampling, stop=()), n)
        choices = []
        for i, c in enumerate(outs):
            text, stopped = cut_at_stop(c.text, sampling.stop)
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "logprobs": None, "finish_reason": "stop" if stopped else c.finish_reason})
        done = sum(c.tokens for c in outs)
        return {"id": cid, "object": "chat.completion", "created": created, "model": config.model_id,
                "choices": choices, "system_fingerprint": f"twin-{engine.name}",
                "usage": {"prompt_tokens": len(ids_), "completion_tokens": done, "total_tokens": len(ids_) + done}}

    app.include_router(v1)
    if turing is not None:
        turing.mount(app)
    return app


def _chunk(cid: str, created: int, model: str, delta: dict, finish: str | None) -> str:
    obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
           "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _sse(engine: TwinEngine, run_in_worker, ids: list[int], sampling: Sampling, cid: str, created: int,
               model: str, include_usage: bool):
    """Server-sent events of one streamed completion, OpenAI's chunk format, ``[DONE]`` at the end.

    The model writes in a worker thread and hands text over through an asyncio queue; a client
    that goes away stops the generation (the cancel event ends it at the next token).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    scanner = StopScanner(sampling.stop)
    DONE = object()

    def on_text(text: str):
        loop.call_soon_threadsafe(queue.put_nowait, text)

    async def work():
        try:
            return await run_in_worker(engine.generate, ids, replace(sampling, stop=()), 1, on_text, cancel)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, DONE)

    task = asyncio.ensure_future(work())
    try:
        yield _chunk(cid, created, model, {"role": "assistant", "content": ""}, None)
        first = True
        while True:
            item = await queue.get()
            if item is DONE:
                break
            piece = scanner.feed(item.lstrip() if first else item)
            first = first and not piece
            if piece:
                yield _chunk(cid, created, model, {"content": piece}, None)
            if scanner.stopped:
                cancel.set()
        tail = scanner.flush()
        if tail:
            yield _chunk(cid, created, model, {"content": tail}, None)
        try:
            outs = await task
        except RequestError as e:
            yield f"data: {json.dumps(e.body())}\n\n"
            yield "data: [DONE]\n\n"
            return
        finish = "stop" if scanner.stopped else outs[0].finish_reason
        yield _chunk(cid, created, model, {}, finish)
        if include_usage:
            usage = {"prompt_tokens": len(ids), "completion_tokens": outs[0].tokens,
                     "total_tokens": len(ids) + outs[0].tokens}
            yield f"data: {json.dumps({'id': cid, 'object': 'chat.completion.chunk', 'created': created, 'model': model, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()  # the client left early: stop writing


def free_port(host: str = DEFAULT_HOST) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class background_server:
    """Run ``app`` with uvicorn in a thread of this process (a notebook, a test, a benchmark).

    ``with background_server(app) as base_url: ...`` starts it on a free port of 127.0.0.1, waits
    until it listens, and always stops it on leaving.
    """

    def __init__(self, app, host: str = DEFAULT_HOST, port: int | None = None, timeout: float = 30.0):
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=3))
        self.thread = threading.Thread(target=self.server.run, name="twin-server", daemon=True)
        self.timeout = timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start on {self.url} within {self.timeout:.0f} s "
                                   "(is the port taken?)")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=15)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m twinlib serve",
        description="Serve a run's twin over an OpenAI-compatible API (/v1/chat/completions, /v1/models), "
                    "with the live Turing test's pages at /turing/.")
    ap.add_argument("--run", required=True, help="the run directory, e.g. runs/sample")
    ap.add_argument("--model", default="best", choices=MODEL_CHOICES,
                    help="which of the run's models to serve (default: best)")
    ap.add_argument("--host", default=DEFAULT_HOST,
                    help="address to listen on (default 127.0.0.1: this machine only). 0.0.0.0 opens it to your "
                         "network: set an --api-key then")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ap.add_argument("--api-key", default=None,
                    help="ask clients of /v1 for 'Authorization: Bearer KEY' (default: $TWIN_API_KEY, else none)")
    ap.add_argument("--workers", type=int, default=2, help="replies written at the same time (default 2)")
    ap.add_argument("--max-request-bytes", type=int, default=MAX_REQUEST_BYTES,
                    help=f"largest request body accepted (default {MAX_REQUEST_BYTES})")
    ap.add_argument("--max-input-chars", type=int, default=MAX_INPUT_CHARS,
                    help=f"most characters over all messages of a request (default {MAX_INPUT_CHARS})")
    ap.add_argument("--no-turing", action="store_true", help="do not host the live Turing test's pages")
    ap.add_argument("--turing-turns", type=int, default=5,
                    help="messages the judge sends before guessing in the live Turing test (default 5)")
    ap.add_argument("--turing-delay", default="human",
                    help="how long the twin waits before answering in the Turing test: 'human' (about typing speed, "
                         "so speed gives nothing away) or seconds, e.g. 0")
    ap.add_argument("--person-token", default=None,
                    help="the secret of the person's page (default: $TWIN_PERSON_TOKEN, else a random one, printed)")
    ap.add_argument("--me", default=None,
                    help="your name as others write it: replaced by <ME> in what the Turing test stores")
    ap.add_argument("--other-names", default="",
                    help="comma-separated names to replace in what the Turing test stores (e.g. the judge's)")
    ap.add_argument("--seed", type=int, default=None, help="seed of the Turing test's draws (default: random)")
    ap.add_argument("--log-level", default="warning", help="uvicorn's log level (default warning)")
    return ap


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``python -m twinlib serve ...``: load the model, print the addresses, serve until Ctrl-C."""
    import uvicorn

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    api_key = args.api_key or os.environ.get("TWIN_API_KEY") or None
    try:
        name, path = resolve_model(args.run, args.model)
    except (FileNotFoundError, ValueError) as e:
        print(f"twin serve: {e}", file=sys.stderr)
        return 1
    from twinlib.modeling import later_stage_profile

    profile = later_stage_profile("auto", args.run)
    if profile.cpu_threads:
        import torch

        torch.set_num_threads(profile.cpu_threads)
    print(f"Loading the {name} twin from {path} …", flush=True)
    engine = TwinEngine.from_run(args.run, name)
    turing = None
    person_token = args.person_token or os.environ.get("TWIN_PERSON_TOKEN") or secrets.token_urlsafe(16)
    if not args.no_turing:
        from twinlib.live_turing import LiveTuring, parse_delay

        others = [n.strip() for n in args.other_names.split(",") if n.strip()]
        turing = LiveTuring(args.run, engine, turns=args.turing_turns, delay=parse_delay(args.turing_delay),
                            person_token=person_token, me=args.me, other_names=others, seed=args.seed)
    app = create_app(engine, ServeConfig(api_key=api_key, max_request_bytes=args.max_request_bytes,
                                         max_input_chars=args.max_input_chars, workers=args.workers), turing=turing)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    base = f"http://{shown}:{args.port}"
    print(f"The {name} twin is served at {base}/v1 (model id {MODEL_ID!r}); "
          f"{'an API key is required' if api_key else 'no API key'}.")
    if turing is not None:
        print(f"Live Turing test: the judge opens {base}/turing/ ; the person (you) opens "
              f"{base}/turing/person#token={person_token}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Listening on {args.host}: other machines can reach this server."
              + ("" if api_key else " Set --api-key so that only your apps can use the model."))
    print("Ctrl-C stops it.", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve_main())
