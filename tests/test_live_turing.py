"""The live Turing test: sessions, the log on disk, pseudonymization, a restart, and two real browsers.

The server runs in a thread of the test process (:class:`twinlib.serve.background_server`) on the
toy run's twin, always stopped by the fixture. The browser test (Debian's Chromium through
Playwright, as the ranking widget's test) opens a judge and a person in two browser contexts and
plays one session with each partner: the judge's page never receives the partner before the guess.
"""

from __future__ import annotations

import json
import random
import shutil
import time

import pytest

from twinlib.live_turing import (PARTNERS, EventLog, LiveTuring, LiveTuringWarning, Session, human_delay,
                                 load_results, make_scrubber, parse_delay, results_path, results_table,
                                 sessions_from_events)

TOKEN = "person-secret"


# --------------------------------------------------------------------------- pieces


def test_the_judge_view_holds_no_partner_before_the_guess():
    s = Session("abc", "twin", turns=1, model="sft", started="now")
    assert s.state == "judge_turn"
    s.messages.append({"from": "judge", "text": "hi", "time": ""})
    assert s.state == "partner_turn" and s.judge_view()["state"] == "waiting"
    s.messages.append({"from": "partner", "text": "yo", "time": ""})
    assert s.state == "guess"
    before = json.dumps(s.judge_view())
    assert "twin" not in before and "result" not in before and "partner" not in before
    s.guess, s.correct = "person", False
    assert s.judge_view()["result"] == {"guess": "person", "was": "twin", "correct": False}


def test_the_log_rebuilds_sessions_and_skips_a_damaged_line(tmp_path):
    log = EventLog(tmp_path / "eval" / "live_turing.jsonl")
    log.append({"event": "start", "session": "s1", "partner": "person", "turns": 1, "model": "sft", "time": "t0"})
    log.append({"event": "message", "session": "s1", "from": "judge", "text": "hi", "time": "t1"})
    with open(log.path, "a", encoding="utf-8") as f:
        f.write('{"event": "message", "session": "s1", "fr')  # a write cut by a crash
    log.path.write_text(log.path.read_text() + "\n")
    log.append({"event": "message", "session": "s1", "from": "partner", "text": "yo", "time": "t2"})
    log.append({"event": "guess", "session": "s1", "guess": "twin", "partner": "person", "correct": False, "time": "t3"})
    with pytest.warns(LiveTuringWarning, match="line 3"):
        sessions = sessions_from_events(log.read())
    s = sessions["s1"]
    assert [m["text"] for m in s.messages] == ["hi", "yo"] and s.state == "done" and s.correct is False


def test_scrubber_replaces_personal_data_and_given_names():
    scrub = make_scrubber(me="Robin Vale", other_names=["Sam Carter"])
    out = scrub("Robin here, text Sam on +44 7700 900123 or sam.carter@example.com, see https://example.org/x")
    assert out == "<ME> here, text <PERSON_1> on <PHONE> or <EMAIL>, see <URL>"
    assert make_scrubber()("call 0044 7700 900123 ok") == "call <PHONE> ok"  # no names known: patterns still apply


def test_delays():
    rng = random.Random(0)
    assert 1.6 <= human_delay("", rng) <= 2.4
    assert human_delay("x" * 1000, rng) == 25.0
    assert parse_delay("0")("anything") == 0 and parse_delay("human") is human_delay
    with pytest.raises(ValueError, match="turing-delay"):
        parse_delay("soon")


def test_no_results_yet_says_how_to_play(tmp_path):
    res = load_results(tmp_path)
    assert res["n"] == 0 and "python -m twinlib serve" in res["summary"]
    assert list(results_table(tmp_path).columns)[:4] == ["session", "model", "partner", "guess"]


# --------------------------------------------------------------------------- a server in this process


def seed_for(first: str, second: str) -> int:
    """A seed whose first two draws are ``first`` then ``second`` (tests play both partners)."""
    for seed in range(1000):
        rng = random.Random(seed)
        if [rng.choice(PARTNERS), rng.choice(PARTNERS)] == [first, second]:
            return seed
    raise AssertionError("no such seed")


@pytest.fixture(scope="module")
def engine(toy_run, one_thread):
    from twinlib.serve import TwinEngine

    return TwinEngine.from_run(toy_run, "sft", device="cpu")


@pytest.fixture
def run(toy_run, tmp_path):
    """A copy of the toy run (the live test writes eval/live_turing.jsonl into it)."""
    dst = tmp_path / "run"
    shutil.copytree(toy_run, dst, ignore=shutil.ignore_patterns("eval"))
    return dst


def serve(run, engine, seed, turns=2, **kw):
    from twinlib.serve import ServeConfig, background_server, create_app

    turing = LiveTuring(run, engine, turns=turns, delay=0, person_token=TOKEN, seed=seed, **kw)
    return background_server(create_app(engine, ServeConfig(workers=2), turing=turing)), turing


def _wait(fn, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sessions_survive_a_restart_and_store_only_pseudonymized_text(run, engine):
    import httpx

    person = {"X-Person-Token": TOKEN}
    srv, _ = serve(run, engine, seed_for("person", "twin"), me="Robin Vale")
    with srv as base:
        api = base + "/turing/api"
        r = httpx.post(api + "/sessions")
        assert r.status_code == 409 and "not online" in r.json()["error"]["message"]  # no person page yet
        assert httpx.get(api + "/person/sessions", headers={"X-Person-Token": "wrong"}).status_code == 403
        assert httpx.get(api + "/person/sessions", headers=person).json()["sessions"] == []
        sid = httpx.post(api + "/sessions").json()["session"]                            # the person, by the seed
        assert httpx.post(f"{api}/sessions/{sid}/guess", json={"guess": "twin"}).status_code == 409  # chat first
        assert httpx.post(f"{api}/sessions/{sid}/messages", json={"text": ""}).status_code == 400
        assert "at most 2000" in httpx.post(f"{api}/sessions/{sid}/messages", json={"text": "x" * 2001}).text
        assert httpx.post(f"{api}/sessions/{sid}/messages", content=b"{" * 20_000).status_code == 400
        assert httpx.post(f"{api}/sessions/{sid}/messages", content=b"{oops").status_code == 400
        v = httpx.post(f"{api}/sessions/{sid}/messages", json={"text": "hi Robin, mail me at judge@example.com"}).json()
        assert v["state"] == "waiting" and v["messages"][0]["text"] == "hi <ME>, mail me at <EMAIL>"
        mine = httpx.get(api + "/person/sessions", headers=person).json()["sessions"]
        assert [s["state"] for s in mine] == ["your_turn"]
        r = httpx.post(f"{api}/person/sessions/{sid}/reply", headers=person,
                       json={"text": "sure, ring me on +44 7700 900123"})
        assert r.status_code == 200
        assert httpx.get(f"{api}/sessions/{sid}").json()["messages"][1]["text"] == "sure, ring me on <PHONE>"
        twin_sid = httpx.post(api + "/sessions").json()["session"]                         # the twin, by the seed
        httpx.post(f"{api}/sessions/{twin_sid}/messages", json={"text": "are you hungry?"})
        _wait(lambda: httpx.get(f"{api}/sessions/{twin_sid}").json()["state"] == "judge_turn", what="the twin")
    text = results_path(run).read_text(encoding="utf-8")
    assert "7700" not in text and "judge@example.com" not in text and "Robin" not in text

    srv, turing = serve(run, engine, seed=None, me="Robin Vale")   # a new server reads the log back
    assert set(turing.sessions) == {sid, twin_sid}
    with srv as base:
        api = base + "/turing/api"
        v = httpx.get(f"{api}/sessions/{sid}").json()
        assert [m["from"] for m in v["messages"]] == ["you", "them"] and v["state"] == "judge_turn"
        httpx.get(api + "/person/sessions", headers=person)
        httpx.post(f"{api}/sessions/{sid}/messages", json={"text": "and tomorrow?"})
        httpx.post(f"{api}/person/sessions/{sid}/reply", headers=person, json={"text": "can't, working"})
        v = httpx.post(f"{api}/sessions/{sid}/guess", json={"guess": "twin"}).json()
        assert v["result"] == {"guess": "twin", "was": "person", "correct": False}
        assert httpx.post(f"{api}/sessions/{sid}/guess", json={"guess": "twin"}).status_code == 409
    res = load_results(run)
    assert res["n"] == 1 and res["correct"] == 0 and res["unfinished"] == 1
    assert 0 <= res["ci_low"] <= res["accuracy"] <= res["ci_high"] <= 1


def test_an_unanswered_twin_turn_is_answered_after_a_restart(run, engine):
    log = EventLog(results_path(run))
    log.append({"event": "start", "session": "s9", "partner": "twin", "turns": 1, "model": "sft", "time": "t"})
    log.append({"event": "message", "session": "s9", "from": "judge", "text": "you still awake?", "time": "t"})
    srv, turing = serve(run, engine, seed=0)
    with srv:
        _wait(lambda: turing.sessions["s9"].state == "guess", what="the twin's reply after the restart")
    assert [e["from"] for e in log.read() if e["event"] == "message"] == ["judge", "partner"]


def test_the_person_answers_from_the_notebook_widget(run, engine):
    import httpx

    from twinlib.live_turing import person_widget

    srv, turing = serve(run, engine, seed_for("person", "person"), turns=1)
    with srv as base:
        box = person_widget(base, TOKEN, auto=False)            # no background thread: refresh by hand
        assert "No judge" in box.children[0].value and box.send_button.disabled
        sid = httpx.post(base + "/turing/api/sessions").json()["session"]
        httpx.post(f"{base}/turing/api/sessions/{sid}/messages", json={"text": "still up?"})
        box.refresh()
        assert "still up?" in box.children[0].value and not box.send_button.disabled
        box.text.value = "yeah, can't sleep"
        box.send_button.click()
        assert httpx.get(f"{base}/turing/api/sessions/{sid}").json()["state"] == "guess"
        assert turing.sessions[sid].messages[-1]["text"] == "yeah, can't sleep"
    with pytest.raises(ValueError, match="person token"):
        person_widget(base, token="")


def test_the_pages_load_nothing_from_elsewhere():
    from twinlib.live_turing import STATIC

    for page in ("turing_judge.html", "turing_person.html"):
        html = (STATIC / page).read_text(encoding="utf-8")
        assert "http://" not in html and "https://" not in html and "//cdn" not in html, page


# --------------------------------------------------------------------------- two real browsers


@pytest.fixture(scope="module")
def chromium():
    from twinlib.browser import find_chromium

    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium found: run `sudo scripts/install_browser.sh` (Debian package 'chromium') or set "
                    "CHROMIUM=/path/to/chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the 'playwright' Python package is not installed (pip install -e .[test])")
    return exe


@pytest.mark.browser
@pytest.mark.slow
def test_judge_and_person_play_both_ways_in_chromium(run, engine, chromium):
    from playwright.sync_api import expect, sync_playwright

    from twinlib.browser import CHROMIUM_ARGS

    srv, turing = serve(run, engine, seed_for("twin", "person"))
    seen: list[dict] = []   # every JSON the judge's page received

    def record(route):
        response = route.fetch()
        body = response.text()
        try:
            seen.append(json.loads(body))
        except ValueError:
            seen.append({"raw": body})
        route.fulfill(response=response, body=body)

    with srv as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            judge = browser.new_context().new_page()
            person = browser.new_context().new_page()
            for page in (judge, person):
                page.set_default_timeout(60_000)
            judge.route("**/turing/api/**", record)
            person.goto(f"{base}/turing/person#token={TOKEN}")
            expect(person.locator("#idle")).to_be_visible()
            judge.goto(f"{base}/turing/")
            for k, button in enumerate(["#start", "#again"]):
                seen.clear()  # the last session's verdict was received after its guess, rightly
                judge.locator(button).click()
                for turn in range(2):
                    expect(judge.locator("#send")).to_be_enabled()
                    judge.locator("#text").fill(f"hello {k}.{turn}, what are you doing tonight?")
                    judge.locator("#send").click()
                    deadline = time.monotonic() + 60
                    while judge.locator(".msg.them").count() < turn + 1:
                        if person.locator(".reply-text").count():
                            person.locator(".reply-text").fill(f"not much ({turn}), call me on +44 7700 900123")
                            person.locator(".reply-send").click()
                            expect(person.locator(".reply-text")).to_have_count(0)
                        assert time.monotonic() < deadline, "no reply reached the judge"
                        judge.wait_for_timeout(150)
                expect(judge.locator("#guess")).to_be_visible()
                # before the guess: nothing the page received, stored or shows names the partner
                stored = judge.evaluate("JSON.stringify(Object.assign({}, localStorage))")
                for blob in [json.dumps(x) for x in seen] + [stored]:
                    assert '"result"' not in blob and '"was"' not in blob and '"partner"' not in blob, blob
                    assert '"twin"' not in blob and '"person"' not in blob, blob
                assert "you were talking to" not in judge.locator("body").inner_text()
                assert judge.locator("#result").text_content() == ""
                judge.locator("#guess-person").click()
                expect(judge.locator("#result")).to_contain_text("you were talking to")
            shown = " ".join(judge.locator(".msg.them").all_inner_texts())
        finally:
            browser.close()

    res = load_results(run)
    assert res["n"] == 2 and res["by_partner"]["twin"]["n"] == 1 and res["by_partner"]["person"]["n"] == 1
    assert res["correct"] == 1 and res["accuracy"] == 0.5 and res["ci_low"] < 0.5 < res["ci_high"]
    assert res["twin_sessions"] == 1 and res["twin_passed"] == 1  # the judge said "person" both times
    table = results_table(run)
    assert sorted(table["partner"]) == ["person", "twin"] and table["correct"].sum() == 1
    text = results_path(run).read_text(encoding="utf-8")
    assert "7700" not in text and "<PHONE>" in text  # pseudonymized before it was written (or shown)
    assert "<PHONE>" in shown or "7700" not in shown
