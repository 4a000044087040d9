"""Progress of long steps as plain lines, readable everywhere.

A tqdm bar in a notebook is a widget: the executed copy shows "0%" in any viewer that does not run
widgets, and ``python -m twinlib run`` (papermill) shows only "Executing 7/17 cells" while one
cell trains for minutes. The long steps (training, refinement rounds, PPO updates) therefore
print short lines instead, at most every ``every`` seconds, with the time left:

    ▸ SFT: step 420/1656 (25%), eval loss 1.21, 31 s in, about 92 s left

Lines start with :data:`PREFIX`; the runner repeats those lines in the terminal as the kernel
prints them.
"""

from __future__ import annotations

import time

PREFIX = "▸ "


def say(message: str) -> None:
    """Print one progress line (flushed at once, so papermill forwards it while the cell runs)."""
    print(PREFIX + message, flush=True)


def _clock(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class Progress:
    """``done`` out of ``total`` with the elapsed time and an estimate of the time left."""

    def __init__(self, label: str, total: int, every: float = 10.0, enabled: bool = True):
        self.label, self.total, self.every, self.enabled = label, max(int(total), 1), every, enabled
        self.t0 = time.monotonic()
        self.last = -1e9

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.every and done < self.total):
            return
        self.last = now
        spent = now - self.t0
        left = spent / done * (self.total - done) if done else float("nan")
        eta = f", about {_clock(left)} left" if done and done < self.total else ""
        say(f"{self.label}: {done}/{self.total} ({100 * done / self.total:.0f}%)"
            + (f", {note}" if note else "") + f", {_clock(spent)} in{eta}")


def trainer_callback(label: str, every: float = 10.0):
    """A ``transformers`` ``TrainerCallback`` printing :class:`Progress` lines for a Trainer's steps
    (with the latest training and evaluation losses) instead of its tqdm bar."""
    from transformers import TrainerCallback

    class PrintProgress(TrainerCallback):
        def __init__(self):
            self.bar = None
            self.loss = self.eval_loss = None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = Progress(label, state.max_steps, every=every)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            self.loss = logs.get("loss", self.loss)
            self.eval_loss = logs.get("eval_loss", self.eval_loss)

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None:
                if state.global_step < state.max_steps != self.bar.total:  # a schedule fitted to a time budget
                    self.bar.total = state.max_steps
                self.bar.update(state.global_step, self._note())

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None and state.global_step < self.bar.total:  # stopped early: say where
                self.bar.total = max(state.global_step, 1)
                self.bar.update(state.global_step, self._note(), force=True)

        def _note(self) -> str:
            parts = []
            if self.loss is not None:
                parts.append(f"loss {float(self.loss):.3f}")
            if self.eval_loss is not None:
                parts.append(f"eval loss {float(self.eval_loss):.3f}")
            return ", ".join(parts)

    return PrintProgress()
