"""The seed's Turing test, live: a judge chats with a hidden partner, the twin or you, and guesses which.

Stage 5's game (:mod:`twinlib.turing`) shows a judge two replies and asks which is real. This is
the test as the course states it: *another person chats with the model and guesses whether they
are talking to you or to it*.

How a session goes (``python -m twinlib serve --run runs/NAME`` hosts the pages):

1. The judge opens ``/turing/`` and starts a conversation. The server draws the partner — the
   twin or the person, at random — and keeps it: nothing the judge's page receives says which,
   until the guess is made.
2. The judge writes; the partner answers. The twin answers from the server (after a pause about
   as long as a person takes to type it, so speed gives nothing away); the person answers from
   their own page, ``/turing/person#token=...`` (the token is printed when the server starts), or
   from the notebook (:func:`person_widget`).
3. After ``turns`` messages the judge guesses: "the twin" or "the person"; the page then shows
   whether that was right.

Everything is appended to ``eval/live_turing.jsonl`` in the run directory as it happens (one
JSON line per event, flushed and fsynced): the draw, each message, the guess. A restarted server
reads the file back and carries on — unfinished conversations included. Every text is
pseudonymized with the project's anonymizer (:mod:`twinlib.privacy`) before it is stored or shown:
the pattern recognizers (phone numbers, e-mail addresses, URLs, IBANs, cards, IPs, coordinates)
always, and the names given with ``--me``/``--other-names``.

:func:`load_results` reads the file for notebook 05: the judges' accuracy with a Wilson
confidence interval (50 % means the twin cannot be told from you), and how often the twin passed
for you; :func:`results_table` lists the sessions.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from starlette.requests import Request  # at module level: FastAPI reads the route annotations

from twinlib.rundir import RunDir

FILE_NAME = "live_turing.jsonl"
PARTNERS = ("twin", "person")
MAX_TEXT_CHARS = 2000
PRESENCE_SECONDS = 20.0      # the person counts as online this long after their page last asked for news
STATIC = Path(__file__).resolve().parent / "static"


def results_path(run_dir) -> Path:
    """Where the live Turing test of a run is recorded: ``eval/live_turing.jsonl``."""
    return RunDir(run_dir).eval / FILE_NAME


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- the event log


class LiveTuringWarning(UserWarning):
    """A line of ``live_turing.jsonl`` could not be read (it was skipped, the rest was kept)."""


class EventLog:
    """An append-only JSON Lines file: one event per line, flushed and fsynced before returning.

    Reading skips a damaged line (a write cut by a crash) with a :class:`LiveTuringWarning` naming
    it, and keeps every complete one. (The rankings store of stage 3 works the same way but checks
    ranking records; this holds another kind of record.)
    """

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record: dict) -> dict:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        return record

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        out, bad = [], []
        for n, line in enumerate(self.path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
                if not isinstance(rec, dict) or "event" not in rec or "session" not in rec:
                    raise ValueError("not a live Turing event (needs 'event' and 'session')")
            except (ValueError, UnicodeDecodeError):
                bad.append(n)
                continue
            out.append(rec)
        if bad:
            warnings.warn(f"{self.path}: skipped {len(bad)} damaged line(s) (line {', '.join(map(str, bad[:5]))}); "
                          "the other events were kept.", LiveTuringWarning, stacklevel=2)
        return out


# --------------------------------------------------------------------------- sessions


@dataclass
class Session:
    id: str
    partner: str          # "twin" or "person": never sent to the judge before the guess
    turns: int            # messages the judge sends before guessing
    model: str
    started: str
    messages: list = field(default_factory=list)   # {"from": "judge" | "partner", "text", "time"}
    guess: str | None = None
    correct: bool | None = None
    finished: str | None = None

    @property
    def sent(self) -> int:
        return sum(m["from"] == "judge" for m in self.messages)

    @property
    def state(self) -> str:
        """``judge_turn``, ``partner_turn``, ``guess`` (all turns played) or ``done``."""
        if self.guess is not None:
            return "done"
        if self.messages and self.messages[-1]["from"] == "judge":
            return "partner_turn"
        return "guess" if self.sent >= self.turns else "judge_turn"

    def judge_view(self) -> dict:
        """All the judge's page may know: the partner is in it only once the guess is made."""
        view = {"session": self.id, "turns": self.turns, "sent": self.sent,
                "state": self.state if self.state != "partner_turn" else "waiting",
                "messages": [{"from": "you" if m["from"] == "judge" else "them", "text": m["text"]}
                             for m in self.messages]}
        if self.guess is not None:
            view["result"] = {"guess": self.guess, "was": self.partner, "correct": self.correct}
        return view

    def person_view(self) -> dict:
        return {"session": self.id, "turns": self.turns, "sent": self.sent,
                "state": "your_turn" if self.state == "partner_turn" else ("waiting" if self.guess is None else "done"),
                "messages": [{"from": "judge" if m["from"] == "judge" else "you", "text": m["text"]}
                             for m in self.messages]}


def sessions_from_events(events: Sequence[dict]) -> dict[str, Session]:
    """Rebuild every session from the log (in order; events of unknown sessions are ignored)."""
    sessions: dict[str, Session] = {}
    for e in events:
        sid, kind = e.get("session"), e.get("event")
        if kind == "start":
            sessions[sid] = Session(sid, e["partner"], int(e["turns"]), e.get("model", ""), e.get("time", ""))
        elif sid in sessions and kind == "message":
            sessions[sid].messages.append({"from": e["from"], "text": e["text"], "time": e.get("time", "")})
        elif sid in sessions and kind == "guess":
            s = sessions[sid]
            s.guess, s.correct, s.finished = e["guess"], bool(e["correct"]), e.get("time", "")
    return sessions


# --------------------------------------------------------------------------- pseudonymization


def make_scrubber(me: str | None = None, other_names: Sequence[str] = ()) -> Callable[[str], str]:
    """``scrub(text) -> text`` with names and personal data replaced, by :func:`twinlib.privacy.scrub_text`.

    There is no participant list at serve time, so only the names given here (``me`` becomes
    ``<ME>``, ``other_names`` ``<PERSON_1>``...) are looked for; the pattern recognizers (phones,
    e-mails, URLs, IBANs, cards, IPs, coordinates) always run.
    """
    from twinlib.privacy import scrub_text

    names = tuple(n for n in other_names if n)
    lock = threading.Lock()  # one text at a time, as before: the recognizers are not known to be thread-safe

    def scrub(text: str) -> str:
        with lock:
            return scrub_text(str(text), me=me, names=names)

    return scrub


# --------------------------------------------------------------------------- timing


def human_delay(text: str, rng: random.Random | None = None) -> float:
    """Seconds a person takes to read and type ``text``: 2 s plus about 5 characters a second, ±20 %, at most 25 s."""
    rng = rng or random.Random()
    return min(25.0, (2.0 + len(text) / 5.0) * rng.uniform(0.8, 1.2))


def parse_delay(spec) -> Callable[[str], float]:
    """``"human"`` → :func:`human_delay`; a number of seconds → that, always."""
    if callable(spec):
        return spec
    if str(spec).strip().lower() == "human":
        return human_delay
    try:
        seconds = float(spec)
    except ValueError:
        raise ValueError(f"--turing-delay must be 'human' or a number of seconds, got {spec!r}") from None
    if seconds < 0:
        raise ValueError(f"--turing-delay must not be negative, got {seconds}")
    return lambda _text: seconds


# --------------------------------------------------------------------------- the test


class LiveTuring:
    """The live Turing test of one run, served by :func:`twinlib.serve.create_app`.

    ``engine`` is the :class:`twinlib.serve.TwinEngine` that answers as the twin; ``turns`` the
    judge's messages per session; ``delay(text)`` the seconds the twin waits before its reply
    appears; ``person_token`` the secret of the person's page; ``me``/``other_names`` the names to
    pseudonymize; ``seed`` makes the draws reproducible (tests), otherwise they come from the
    operating system's randomness.
    """

    def __init__(self, run_dir, engine, turns: int = 5, delay: Callable[[str], float] | float | str = "human",
                 person_token: str | None = None, me: str | None = None, other_names: Sequence[str] = (),
                 seed: int | None = None, presence_seconds: float = PRESENCE_SECONDS):
        if int(turns) < 1:
            raise ValueError(f"turns must be at least 1, got {turns}")
        self.run = RunDir(run_dir)
        self.engine = engine
        self.turns = int(turns)
        self.delay = parse_delay(delay)
        self.person_token = person_token or secrets.token_urlsafe(16)
        self.presence_seconds = presence_seconds
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self._names = (me, tuple(other_names))
        self._scrub: Callable[[str], str] | None = None
        self._scrub_lock = threading.Lock()
        self.log = EventLog(results_path(self.run))
        self.sessions = sessions_from_events(self.log.read())
        self._person_seen = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = None
        self._tasks: set = set()

    # ---- plumbing
    def scrub(self, text: str) -> str:
        with self._scrub_lock:
            if self._scrub is None:
                self._scrub = make_scrubber(*self._names)
        return self._scrub(text)

    def attach(self, loop, executor) -> None:
        """Called by the server once its event loop runs: warm the anonymizer, and answer any
        judge message the twin had not answered when the server last stopped."""
        self._loop, self._executor = loop, executor
        self._spawn(loop.run_in_executor(executor, self.scrub, "warm up"))
        for s in self.sessions.values():
            if s.partner == "twin" and s.state == "partner_turn":
                self._spawn(self._twin_reply(s))

    def _spawn(self, aw) -> None:
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _record(self, session: Session, event: str, **fields) -> dict:
        return self.log.append({"event": event, "session": session.id, "time": _now(), **fields})

    def _session(self, sid: str) -> Session:
        from twinlib.serve import RequestError

        s = self.sessions.get(sid)
        if s is None:
            raise RequestError(f"no conversation {sid!r} on this server: start a new one.", status=404,
                               kind="not_found_error")
        return s

    @staticmethod
    def _text(body: dict) -> str:
        from twinlib.serve import RequestError

        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise RequestError("send {\"text\": \"...\"} with something in it.", param="text")
        if len(text) > MAX_TEXT_CHARS:
            raise RequestError(f"a message may hold at most {MAX_TEXT_CHARS} characters, this one has {len(text)}.",
                               param="text")
        return text.strip()

    def person_online(self) -> bool:
        return time.monotonic() - self._person_seen < self.presence_seconds

    # ---- the judge
    def start(self) -> Session:
        from twinlib.serve import RequestError

        if not self.person_online():
            raise RequestError("the person is not online: they must open their page (the address with #token=... "
                               "printed by the server) before a conversation can start.", status=409,
                               kind="person_offline")
        partner = self._rng.choice(PARTNERS)
        s = Session(secrets.token_urlsafe(12), partner, self.turns, self.engine.name, _now())
        self.sessions[s.id] = s
        self._record(s, "start", partner=partner, turns=s.turns, model=s.model)
        return s

    async def judge_says(self, sid: str, text: str) -> Session:
        from twinlib.serve import RequestError

        s = self._session(sid)
        if s.state != "judge_turn":
            raise RequestError({"partner_turn": "wait for the reply before writing again.",
                                "guess": f"all {s.turns} messages are sent: make your guess.",
                                "done": "this conversation is over: start a new one."}[s.state], status=409,
                               kind="conflict")
        clean = await self._off_loop(self.scrub, text)
        s.messages.append({"from": "judge", "text": clean, "time": _now()})
        self._record(s, "message", **{"from": "judge", "text": clean})
        if s.partner == "twin":
            self._spawn(self._twin_reply(s))
        return s

    async def _twin_reply(self, s: Session) -> None:
        started = time.monotonic()
        history = [{"sender": "<ME>" if m["from"] == "partner" else "<PERSON_1>", "text": m["text"],
                    "me": m["from"] == "partner"} for m in s.messages]
        context, prompt = history[:-1], history[-1]["text"]
        ids = await self._off_loop(self.engine.encode, context, prompt)
        text = ""
        for _attempt in range(3):  # an empty reply would give the twin away
            out = await self._off_loop(self.engine.generate, ids, self.engine.defaults())
            text = out[0].text.strip()
            if text:
                break
        clean = await self._off_loop(self.scrub, text or "…")
        wait = self.delay(clean) - (time.monotonic() - started)
        if wait > 0:
            await asyncio.sleep(wait)
        if s.state == "partner_turn":
            s.messages.append({"from": "partner", "text": clean, "time": _now()})
            self._record(s, "message", **{"from": "partner", "text": clean})

    def guess(self, sid: str, guess: str) -> Session:
        from twinlib.serve import RequestError

        s = self._session(sid)
        if guess not in PARTNERS:
            raise RequestError(f"guess 'twin' or 'person', got {guess!r}.", param="guess")
        if s.state == "done":
            raise RequestError("this conversation has been judged already.", status=409, kind="conflict")
        if s.state != "guess":
            raise RequestError(f"chat first: guess after your {s.turns} messages have been answered "
                               f"({s.sent} sent so far).", status=409, kind="conflict")
        s.guess, s.correct, s.finished = guess, guess == s.partner, _now()
        self._record(s, "guess", guess=guess, partner=s.partner, correct=s.correct)
        return s

    # ---- the person
    def check_person(self, token: str | None) -> None:
        from twinlib.serve import RequestError

        if not token or not secrets.compare_digest(token.encode(), self.person_token.encode()):
            raise RequestError("this page is the person's: open it with the address the server printed "
                               "(…/turing/person#token=...).", status=403, kind="permission_error")
        self._person_seen = time.monotonic()

    def person_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.partner == "person" and s.guess is None]

    async def person_says(self, sid: str, text: str) -> Session:
        from twinlib.serve import RequestError

        s = self._session(sid)
        if s.partner != "person" or s.state != "partner_turn":
            raise RequestError("nothing to answer in this conversation right now.", status=409, kind="conflict")
        clean = await self._off_loop(self.scrub, text)
        if s.state != "partner_turn":  # answered from another page meanwhile
            raise RequestError("this message has been answered already.", status=409, kind="conflict")
        s.messages.append({"from": "partner", "text": clean, "time": _now()})
        self._record(s, "message", **{"from": "partner", "text": clean})
        return s

    # ---- HTTP
    def mount(self, app) -> None:
        """Add the pages (``/turing/``, ``/turing/person``) and their JSON API to ``app``."""
        from fastapi import APIRouter
        from fastapi.responses import FileResponse, RedirectResponse

        from twinlib.serve import RequestError, read_body

        router = APIRouter(prefix="/turing")
        nocache = {"Cache-Control": "no-store"}

        async def body_of(request: Request) -> dict:
            raw = await read_body(request, 8 * MAX_TEXT_CHARS + 1024)  # refused before it is all read
            try:
                data = json.loads(raw or b"{}")
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise RequestError(f"the body is not valid JSON: {e}.") from None
            if not isinstance(data, dict):
                raise RequestError("the body must be a JSON object.")
            return data

        @router.get("", include_in_schema=False)
        async def bare():
            return RedirectResponse("/turing/")

        @router.get("/")
        async def judge_page():
            return FileResponse(STATIC / "turing_judge.html", headers=nocache)

        @router.get("/person")
        async def person_page():
            return FileResponse(STATIC / "turing_person.html", headers=nocache)

        @router.post("/api/sessions")
        async def start():
            return self.start().judge_view()

        @router.get("/api/sessions/{sid}")
        async def view(sid: str):
            return self._session(sid).judge_view()

        @router.post("/api/sessions/{sid}/messages")
        async def say(sid: str, request: Request):
            return (await self.judge_says(sid, self._text(await body_of(request)))).judge_view()

        @router.post("/api/sessions/{sid}/guess")
        async def guess(sid: str, request: Request):
            return self.guess(sid, (await body_of(request)).get("guess")).judge_view()

        @router.get("/api/person/sessions")
        async def person_list(request: Request):
            self.check_person(request.headers.get("x-person-token"))
            return {"sessions": [s.person_view() for s in self.person_sessions()],
                    "score": score_line(summarize(self.sessions.values()))}

        @router.post("/api/person/sessions/{sid}/reply")
        async def person_reply(sid: str, request: Request):
            self.check_person(request.headers.get("x-person-token"))
            return (await self.person_says(sid, self._text(await body_of(request)))).person_view()

        app.include_router(router)


# --------------------------------------------------------------------------- results (notebook 05)


def summarize(sessions) -> dict:
    """Scores of judged sessions: accuracy (with its 95 % Wilson interval) and the twin's pass rate."""
    from twinlib.turing import binomial_ci

    judged = [s for s in sessions if s.guess is not None]
    n, k = len(judged), sum(bool(s.correct) for s in judged)
    lo, hi = binomial_ci(k, n)
    twin = [s for s in judged if s.partner == "twin"]
    passed = sum(s.guess == "person" for s in twin)
    p_lo, p_hi = binomial_ci(passed, len(twin))
    by = {}
    for p in PARTNERS:
        js = [s for s in judged if s.partner == p]
        by[p] = {"n": len(js), "correct": sum(bool(s.correct) for s in js)}
    return {
        "n": n, "correct": k, "accuracy": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi,
        "twin_sessions": len(twin), "twin_passed": passed,
        "twin_pass_rate": passed / len(twin) if twin else float("nan"), "twin_pass_ci": (p_lo, p_hi),
        "by_partner": by, "unfinished": sum(1 for s in sessions if s.guess is None),
    }


def score_line(summary: dict) -> str:
    """One sentence for people."""
    if not summary["n"]:
        return "No guesses yet."
    line = (f"The judges were right {summary['correct']} times in {summary['n']} ({summary['accuracy']:.0%}, "
            f"95% CI {summary['ci_low']:.0%}–{summary['ci_high']:.0%}); 50% means the twin cannot be told from you.")
    if summary["twin_sessions"]:
        line += f" The twin passed for you in {summary['twin_passed']} of {summary['twin_sessions']} conversations."
    return line


def load_results(run_dir) -> dict:
    """The live Turing test of a run, for notebook 05: :func:`summarize`'s numbers plus ``summary``
    (a sentence), ``path`` and ``sessions`` (every session's transcript, judged or not).

    A run without a live test gives ``n == 0`` (and says how to play one).
    """
    path = results_path(run_dir)
    sessions = list(sessions_from_events(EventLog(path).read()).values())
    out = summarize(sessions)
    out["path"] = str(path)
    out["summary"] = score_line(out) if sessions else (
        f"No live Turing test yet ({path} does not exist): run `python -m twinlib serve --run {run_dir}`, "
        "open the person's page yourself and give the judge the /turing/ page.")
    out["sessions"] = [{"session": s.id, "partner": s.partner, "guess": s.guess, "correct": s.correct,
                        "model": s.model, "started": s.started, "finished": s.finished,
                        "messages": [{"from": m["from"], "text": m["text"]} for m in s.messages]}
                       for s in sessions]
    return out


def results_table(run_dir):
    """One row per judged session: who the partner was, the guess, whether it was right, the length."""
    import pandas as pd

    rows = [{"session": s["session"][:8], "model": s["model"], "partner": s["partner"], "guess": s["guess"],
             "correct": s["correct"], "messages": len(s["messages"]), "finished": s["finished"]}
            for s in load_results(run_dir)["sessions"] if s["guess"] is not None]
    return pd.DataFrame(rows, columns=["session", "model", "partner", "guess", "correct", "messages", "finished"])


# --------------------------------------------------------------------------- the person, from a notebook


class PersonClient:
    """The person's side of the live test over HTTP (what the person's page does), for the notebook."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0):
        self.base = base_url.rstrip("/")
        self.token, self.timeout = token, timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"X-Person-Token": self.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read())["error"]["message"]
            except Exception:  # noqa: BLE001 — not our JSON: say what came back
                msg = str(e)
            raise RuntimeError(f"the server said {e.code}: {msg}") from None

    def sessions(self) -> dict:
        """``{"sessions": [...], "score": "..."}``: the conversations waiting for you (and counts as 'online')."""
        return self._call("GET", "/turing/api/person/sessions")

    def reply(self, session: str, text: str) -> dict:
        return self._call("POST", f"/turing/api/person/sessions/{session}/reply", {"text": text})


def person_widget(base_url: str = "http://127.0.0.1:8000", token: str | None = None, poll_seconds: float = 2.0,
                  auto: bool = True):
    """Answer as the person from the notebook: the conversations waiting for you, a box to reply.

    ``token`` is the person token the server printed (or ``$TWIN_PERSON_TOKEN``). With ``auto``
    a background thread asks for news every ``poll_seconds`` (that also keeps you "online");
    *Refresh* does it by hand. Returns an ``ipywidgets.VBox`` with ``client`` and ``refresh``.
    """
    import html

    import ipywidgets as w

    token = token or os.environ.get("TWIN_PERSON_TOKEN")
    if not token:
        raise ValueError("pass the person token the server printed (…/turing/person#token=TOKEN), "
                         "or set TWIN_PERSON_TOKEN.")
    client = PersonClient(base_url, token)
    log, status = w.HTML(), w.HTML()
    text = w.Text(placeholder="your reply…", layout=w.Layout(width="60%"))
    send, refresh = w.Button(description="Send", button_style="primary"), w.Button(description="Refresh")
    online = w.Checkbox(value=auto, description="online (check every few seconds)")
    current: dict = {"session": None}

    def show(_=None):
        try:
            data = client.sessions()
        except Exception as e:  # noqa: BLE001 — the server may be down: say so in the widget
            status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            return
        waiting = [s for s in data["sessions"] if s["state"] == "your_turn"]
        s = waiting[0] if waiting else (data["sessions"][0] if data["sessions"] else None)
        current["session"] = s["session"] if s and s["state"] == "your_turn" else None
        if s is None:
            log.value = "<i>No judge is talking to you right now.</i>"
        else:
            log.value = "".join(f"<div><b>{'judge' if m['from'] == 'judge' else 'you'}:</b> {html.escape(m['text'])}</div>"
                                for m in s["messages"])
        send.disabled = current["session"] is None
        status.value = f"<i>{html.escape(data['score'])}</i>"

    def do_send(_=None):
        if current["session"] and text.value.strip():
            try:
                client.reply(current["session"], text.value)
                text.value = ""
            except Exception as e:  # noqa: BLE001
                status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
                return
        show()

    def poll():
        while online.value:
            show()
            time.sleep(poll_seconds)

    def on_online(change):
        if change["new"]:
            threading.Thread(target=poll, daemon=True).start()

    send.on_click(do_send)
    refresh.on_click(show)
    online.observe(on_online, names="value")
    box = w.VBox([log, w.HBox([text, send, refresh]), online, status])
    box.client, box.refresh, box.text, box.send_button = client, show, text, send
    show()
    if auto:
        threading.Thread(target=poll, daemon=True).start()
    return box
