"""The ranking widget: a thin ipywidgets face on :class:`twinlib.ranking.RankingSession`.

Every button calls one session method (``submit``, ``none_of_these``, ``skip``, ``undo``) and
then redraws from the session, so the widget holds no state of its own that could be lost:
the judgements are in ``rankings.jsonl`` the moment a button is clicked.

Ways to rank one item (ties allowed in all of them):

* the rank buttons ``1 … k`` next to each candidate, then **Submit**; candidates left without a
  rank share the rank after the worst one given, so picking only the best one is enough;
* clicking the candidates' number buttons in order, best first (click again to clear), then
  **Submit**;
* the keyboard: type the order into the box and press Enter (``3142``, ``3=1 4`` for a tie,
  ``n`` none of these, ``s`` skip, ``u`` undo). Tab moves between buttons, Space presses one.

The widget never blocks the kernel: it only reacts to clicks. Tests drive it without a
browser by setting ``.value`` and calling ``.click()``.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from twinlib.ranking import RankingError, RankingSession, parse_order

MAX_CONTEXT_TURNS = 6


def _esc(text) -> str:
    return html.escape(str(text)).replace("\n", "<br>")


def render_conversation(item, max_turns: int = MAX_CONTEXT_TURNS) -> str:
    """HTML (escaped) of an item's last earlier turns and the message to answer."""
    turns = item.context[-max_turns:] if item.context else []
    parts = []
    if item.context and len(item.context) > max_turns:
        parts.append(f"<div style='color:#888'>… {len(item.context) - max_turns} earlier message(s)</div>")
    for t in turns:
        who = "you" if t.get("me") else _esc(t.get("sender") or "them")
        align = "right" if t.get("me") else "left"
        parts.append(f"<div style='text-align:{align};color:#555'><b>{who}:</b> {_esc(t.get('text', ''))}</div>")
    parts.append(f"<div style='margin-top:4px;font-size:1.1em'><b>message to answer:</b> {_esc(item.prompt)}</div>")
    return "<div class='twin-conversation'>" + "".join(parts) + "</div>"


class RankingWidget(widgets.VBox):
    """Rank the twin's candidates for one message after another (see the module docstring).

    ``on_complete(session)`` is called whenever the last open item gets its judgement (the
    refinement loop uses it to learn and bring the next round). ``simulated_note`` is shown
    above the items when the rankings are not the person's own.
    """

    def __init__(self, session: RankingSession, on_complete=None, title: str = "Which replies sound most like you?",
                 note: str | None = None):
        self.session = session
        self.on_complete = on_complete
        self._k = 0
        self.title = widgets.HTML(f"<h4 style='margin:0'>{_esc(title)}</h4>" + (f"<div>{_esc(note)}</div>" if note else ""))
        self.progress_bar = widgets.IntProgress(min=0, max=max(len(session.items), 1), value=0,
                                                layout=widgets.Layout(width="50%"))
        self.progress_bar.add_class("twin-progress")
        self.progress_label = widgets.Label()
        self.progress_label.add_class("twin-progress-label")
        self.conversation = widgets.HTML()
        self.rows_box = widgets.VBox()
        self.pick_buttons: list[widgets.Button] = []
        self.rank_buttons: list[widgets.ToggleButtons] = []
        self.candidate_html: list[widgets.HTML] = []
        self.order_box = widgets.Text(placeholder="keyboard: type the order best first (e.g. 2143, 2=1 3), Enter · n none · s skip · u undo",
                                      continuous_update=False, layout=widgets.Layout(width="70%"))
        self.order_box.add_class("twin-order")
        self.submit_button = widgets.Button(description="Submit", button_style="primary", icon="check")
        self.none_button = widgets.Button(description="None sound like me", button_style="warning")
        self.skip_button = widgets.Button(description="Skip")
        self.undo_button = widgets.Button(description="Undo", icon="undo")
        self.clear_button = widgets.Button(description="Clear")
        for b, cls in ((self.submit_button, "twin-submit"), (self.none_button, "twin-none"), (self.skip_button, "twin-skip"),
                       (self.undo_button, "twin-undo"), (self.clear_button, "twin-clear")):
            b.add_class(cls)
        self.message = widgets.HTML()
        self.message.add_class("twin-message")
        self.submit_button.on_click(lambda _: self.submit())
        self.none_button.on_click(lambda _: self._act(self.session.none_of_these, "marked: none of these"))
        self.skip_button.on_click(lambda _: self._act(self.session.skip, "skipped"))
        self.undo_button.on_click(lambda _: self.undo())
        self.clear_button.on_click(lambda _: self.clear())
        self.order_box.observe(self._on_order, names="value")
        buttons = widgets.HBox([self.submit_button, self.none_button, self.skip_button, self.undo_button, self.clear_button])
        super().__init__([
            self.title,
            widgets.HBox([self.progress_bar, self.progress_label]),
            self.conversation,
            self.rows_box,
            buttons,
            self.order_box,
            self.message,
        ])
        self.add_class("twin-ranking")
        self._was_done = session.done
        self.refresh()

    # ---- drawing
    def _build_rows(self, k: int) -> None:
        self._k = k
        self.pick_buttons, self.rank_buttons, self.candidate_html, rows = [], [], [], []
        for i in range(k):
            pick = widgets.Button(description=str(i + 1), tooltip="click the candidates in order, best first",
                                  layout=widgets.Layout(width="3em"))
            pick.add_class(f"twin-pick-{i}")
            pick.on_click(lambda _, i=i: self.pick(i))
            ranks = widgets.ToggleButtons(options=[str(r) for r in range(1, k + 1)], value=None,
                                          tooltips=["best"] + [""] * (k - 2) + ["worst"] if k > 1 else ["best"],
                                          style={"button_width": "2.2em"})
            ranks.add_class(f"twin-ranks-{i}")
            text = widgets.HTML(layout=widgets.Layout(flex="1"))
            row = widgets.HBox([pick, ranks, text], layout=widgets.Layout(align_items="center"))
            row.add_class(f"twin-row-{i}")
            self.pick_buttons.append(pick)
            self.rank_buttons.append(ranks)
            self.candidate_html.append(text)
            rows.append(row)
        self.rows_box.children = rows

    def refresh(self) -> None:
        """Redraw from the session: progress, the current item, button states."""
        prog = self.session.progress()
        self.progress_bar.max = max(prog.total, 1)
        self.progress_bar.value = prog.done
        self.progress_label.value = prog.label
        item = self.session.next_item()
        active = item is not None
        for b in (self.submit_button, self.none_button, self.skip_button, self.clear_button):
            b.disabled = not active
        self.order_box.disabled = not active
        if not active:
            self.conversation.value = (f"<div class='twin-done'><b>All {prog.total} done</b> — {_esc(prog.label)}. "
                                       "Your judgements are saved in rankings.jsonl.</div>")
            self.rows_box.children = []
            self._k = 0
            return
        if len(item.candidates) != self._k:
            self._build_rows(len(item.candidates))
        self.conversation.value = render_conversation(item)
        for i, cand in enumerate(item.candidates):
            self.rank_buttons[i].value = None
            self.candidate_html[i].value = f"<span class='twin-candidate'>{_esc(cand) if cand.strip() else '<i>(empty reply)</i>'}</span>"

    # ---- actions (also what tests call)
    def ranks(self) -> list[int | None]:
        return [int(t.value) if t.value else None for t in self.rank_buttons]

    def pick(self, i: int) -> None:
        """Click-order: give candidate ``i`` the next rank, or clear it if it has one."""
        tb = self.rank_buttons[i]
        if tb.value:
            tb.value = None
            return
        given = [r for r in self.ranks() if r is not None]
        tb.value = str(min((max(given) + 1) if given else 1, self._k))

    def clear(self) -> None:
        for tb in self.rank_buttons:
            tb.value = None
        self.message.value = ""

    def submit(self) -> None:
        ranks = self.ranks()
        if all(r is None for r in ranks):
            self._say("Give at least the best candidate a rank (or choose 'None sound like me' / 'Skip').", error=True)
            return
        self._act(lambda: self.session.submit(ranks), "saved")

    def undo(self) -> None:
        rec = self.session.undo()
        self._was_done = self.session.done
        self.refresh()
        self._say("undone: back to the previous item" if rec else "nothing to undo")

    def _on_order(self, change) -> None:
        text = (change["new"] or "").strip().lower()
        if not text:
            return
        self.order_box.value = ""
        if text in ("n", "none"):
            self._act(self.session.none_of_these, "marked: none of these")
        elif text in ("s", "skip"):
            self._act(self.session.skip, "skipped")
        elif text in ("u", "undo"):
            self.undo()
        else:
            item = self.session.next_item()
            if item is None:
                return
            try:
                ranks = parse_order(text, len(item.candidates))
            except RankingError as e:
                self._say(str(e), error=True)
                return
            self._act(lambda: self.session.submit(ranks), "saved")

    def _act(self, fn, what: str) -> None:
        try:
            fn()
        except RankingError as e:
            self._say(str(e), error=True)
            return
        self.refresh()
        self._say(what)
        if self.session.done and not self._was_done:
            self._was_done = True
            if self.on_complete is not None:
                self.on_complete(self.session)
        self._was_done = self.session.done

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00" if error else "#070"
        self.message.value = f"<span style='color:{color}'>{_esc(text)}</span>"

    def set_session(self, session: RankingSession, note: str | None = None) -> None:
        """Show another queue (the next refinement round) in the same widget."""
        self.session = session
        self._was_done = session.done
        self._k = 0
        if note is not None:
            self.title.value = self.title.value.split("<div>")[0] + f"<div>{_esc(note)}</div>"
        self.refresh()
