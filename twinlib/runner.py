"""Run the numbered notebooks in order with papermill, into one run directory.

``python -m twinlib run --export PATH --profile tiny --run-dir runs/NAME`` executes
``notebooks/01_*.ipynb``, ``02_*``, … with the parameters each one declares, writes the
executed copies to ``runs/NAME/notebooks/`` and records what finished in
``runs/NAME/run_state.json`` so that ``--resume`` skips the stages already done.

Personal parameters (:data:`PRIVATE_PARAMETERS`: your name, nicknames, other people's names,
the paths of your exports) never reach the executed copies. Papermill writes the values it
injects into the notebook it saves, so these are not injected: the runner hands them to the
kernel in an environment variable (:data:`PRIVATE_ENV`, set for the run only), and a cell it adds
after the parameters cell reads them back with :func:`private_parameters`. The executed copy
shows that call, not the values; run by hand (or by nbval) it falls back to the notebook's defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
STATE_FILE = "run_state.json"
#: Parameters that name people or point at their exports: passed out of band (see the module doc).
PRIVATE_PARAMETERS = ("me", "nicknames", "other_names", "export_paths")
PRIVATE_ENV = "TWIN_PRIVATE_PARAMETERS"
PRIVATE_TAG = "twin-private-parameters"


def private_parameters(**defaults):
    """The values the runner passed for these parameters (see the module doc), in the order
    given, as a tuple; each falls back to its default (the notebook's own value) when the
    notebook runs without the runner."""
    passed = json.loads(os.environ.get(PRIVATE_ENV) or "{}")
    return tuple(passed.get(name, default) for name, default in defaults.items())


def _with_private_cell(notebook: Path, names: list[str]):
    """The notebook with a cell after its ``parameters`` cell that reads ``names`` through
    :func:`private_parameters` (papermill puts the parameters it injects between the two)."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    at = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
    targets = ", ".join(names) + ("," if len(names) == 1 else "")
    source = ("# Your personal settings reach this run from the runner, not from papermill, so this executed\n"
              "# copy holds none of them (see twinlib/runner.py).\n"
              "from twinlib.runner import private_parameters\n"
              f"{targets} = private_parameters({', '.join(f'{n}={n}' for n in names)})")
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": [PRIVATE_TAG]}))
    return nb


class StageFailed(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the executed copy."""


def stage_notebooks(notebooks_dir=NOTEBOOKS_DIR) -> list[Path]:
    """The pipeline's notebooks: ``01_*.ipynb`` … ``99_*.ipynb`` in order (``00_template`` is not a stage)."""
    nbs = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_"))
    if not nbs:
        raise FileNotFoundError(f"no numbered notebooks found in {notebooks_dir}")
    return nbs


def declared_parameters(notebook: Path) -> dict:
    """Names and defaults of the notebook's ``parameters`` cell (via papermill)."""
    import papermill as pm

    return {name: info["default"] for name, info in pm.inspect_notebook(str(notebook)).items()}


def _load_state(run_dir: Path) -> dict:
    f = run_dir / STATE_FILE
    if not f.exists():
        return {"stages": {}}
    return json.loads(f.read_text(encoding="utf-8"))


def _save_state(run_dir: Path, state: dict) -> None:
    f = run_dir / STATE_FILE
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(f)


def _fingerprint(params: dict) -> str:
    """A hash of a stage's parameters: resume compares it, and run_state.json never holds the
    values themselves (they include the user's name). ``run_dir`` is left out: a run moved to
    another folder (or to Drive) is the same run and resumes."""
    kept = {k: v for k, v in params.items() if k != "run_dir"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def _kernel_transport(tmp: str) -> dict:
    """On POSIX, the notebook's kernel talks to the runner over Unix sockets in ``tmp`` (a private
    temporary folder) rather than over TCP on localhost: nothing listens on a port while a stage
    runs, and the kernel prints no warning about unencrypted TCP into the terminal. A temporary
    folder too deep for a socket's path keeps TCP."""
    ip = os.path.join(tmp, "kernel")
    if os.name != "posix" or len(ip) > 90:  # a Unix socket's path has at most 104-108 bytes (kernel-<port> added)
        return {}
    from traitlets.config import Config

    return {"config": Config({"KernelManager": {"transport": "ipc", "ip": ip}})}


class ProgressEcho:
    """A file-like sink for the kernel's stdout that repeats the progress lines of long steps
    (:mod:`twinlib.progress`) in the runner's terminal as they come, so a cell that trains for
    minutes shows more than "Executing 7/17 cells". Everything else stays in the notebook only."""

    def __init__(self, log=print):
        from twinlib.progress import PREFIX

        self.prefix, self.log, self.buffer = PREFIX, log, ""

    def write(self, text: str) -> int:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            if line.startswith(self.prefix):
                self.log("   " + line)
        return len(text)

    def flush(self) -> None:
        pass


@dataclass
class StageResult:
    notebook: str
    status: str  # "done", "skipped"
    seconds: float


def _failure_message(nb: Path, out: Path, err) -> str:
    cell = getattr(err, "cell_index", None)
    count = getattr(err, "exec_count", None)
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    where = f"cell {cell}" + (f" (execution count {count})" if count is not None else "") if cell is not None else "a cell"
    return (
        f"Stage {nb.name} failed in {where}: {ename}: {evalue}\n"
        f"  The executed notebook with the full traceback is {out}.\n"
        f"  Fix the cause, then continue with the same command plus --resume (finished stages are kept)."
    )


def run_pipeline(
    run_dir,
    parameters: dict,
    notebooks: list[Path] | None = None,
    resume: bool = False,
    only: list[str] | None = None,
    log=print,
    progress_bar: bool = True,
) -> list[StageResult]:
    """Execute the stage notebooks in order; see the module docstring.

    ``parameters`` are offered to every notebook; each gets only those it declares in its
    ``parameters`` cell. A run directory that already holds finished stages is only continued
    with ``resume=True`` (finished stages with the same parameters are skipped), so that nothing
    a user made is silently re-run over.
    """
    import papermill as pm

    run_dir = Path(run_dir).resolve()
    notebooks = notebooks or stage_notebooks()
    if only:
        wanted = {o.zfill(2) if o.isdigit() else o for o in only}
        notebooks = [n for n in notebooks if n.name[:2] in wanted or n.stem in wanted or n.name in wanted]
        if not notebooks:
            raise ValueError(f"--only {only} matches no notebook")
    state = _load_state(run_dir)
    done = {k for k, v in state["stages"].items() if v.get("status") == "done"}
    if done and not resume:
        raise FileExistsError(
            f"{run_dir} already holds finished stages ({', '.join(sorted(done))}). Pass --resume to continue "
            f"it (finished stages are skipped), or choose a new --run-dir. Nothing was changed."
        )
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    results = []
    total = len(notebooks)
    for i, nb in enumerate(notebooks, 1):
        declared = declared_parameters(nb)
        params = {k: v for k, v in parameters.items() if k in declared}
        params["run_dir"] = str(run_dir)
        if "run_dir" not in declared:
            params.pop("run_dir")
        prev = state["stages"].get(nb.name, {})
        key = _fingerprint(params)
        if resume and prev.get("status") == "done" and prev.get("parameters_sha256") == key:
            log(f"[{i}/{total}] {nb.name}: done earlier, skipped (--resume)")
            results.append(StageResult(nb.name, "skipped", 0.0))
            continue
        out = run_dir / "notebooks" / nb.name
        log(f"[{i}/{total}] {nb.name} …")
        t0 = time.time()
        state["stages"][nb.name] = {"status": "running", "started": t0, "parameters_sha256": key}
        _save_state(run_dir, state)
        private = {k: params.pop(k) for k in PRIVATE_PARAMETERS if k in params}
        try:
            with tempfile.TemporaryDirectory(prefix="twin-stage-") as tmp:
                source = nb
                if private:  # the notebook with its private cell, written where the run is not
                    import nbformat

                    source = Path(tmp) / nb.name
                    nbformat.write(_with_private_cell(nb, list(private)), str(source))
                    os.environ[PRIVATE_ENV] = json.dumps(private)
                pm.execute_notebook(
                    str(source), str(out), parameters=params, progress_bar=progress_bar, cwd=str(PROJECT_ROOT),
                    kernel_name="python3", log_output=False, stdout_file=ProgressEcho(log) if progress_bar else None,
                    **_kernel_transport(tmp),
                )
        except pm.PapermillExecutionError as err:
            state["stages"][nb.name] = {"status": "failed", "parameters_sha256": key, "error": err.ename}
            _save_state(run_dir, state)
            raise StageFailed(_failure_message(nb, out, err)) from None
        finally:
            os.environ.pop(PRIVATE_ENV, None)
            if private:
                _point_at_source(out, nb)
        dt = time.time() - t0
        state["stages"][nb.name] = {"status": "done", "seconds": round(dt, 1), "finished": time.time(), "parameters_sha256": key}
        _save_state(run_dir, state)
        log(f"[{i}/{total}] {nb.name}: done in {dt:.0f} s")
        results.append(StageResult(nb.name, "done", dt))
    return results


def _point_at_source(executed: Path, notebook: Path) -> None:
    """Papermill records the notebook it ran (here a temporary copy): record the stage's notebook."""
    try:
        data = json.loads(executed.read_text(encoding="utf-8"))
        data.setdefault("metadata", {}).setdefault("papermill", {})["input_path"] = str(notebook)
        executed.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    except (OSError, ValueError):  # no executed copy (the kernel never started): nothing to fix
        pass


def _parse_param(text: str):
    if "=" not in text:
        raise ValueError(f"--param takes KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def main_run(args) -> int:
    params = {"profile": args.profile}
    if args.export:
        params["export_paths"] = [str(Path(p).expanduser().resolve()) for p in args.export]
        params["me"] = args.me or ""  # your own export: infer "me" unless given (not the sample's persona)
    elif args.me:
        params["me"] = args.me
    if args.base_model:
        params["base_model"] = args.base_model
    for p in args.param or []:
        k, v = _parse_param(p)
        params[k] = v
    t0 = time.time()
    try:
        results = run_pipeline(args.run_dir, params, resume=args.resume, only=args.only, progress_bar=not args.quiet)
    except (StageFailed, FileExistsError, ValueError, FileNotFoundError) as e:
        print(f"twin: {e}", file=sys.stderr)
        return 1
    ran = sum(r.status == "done" for r in results)
    print(f"finished {ran} stage(s) in {time.time() - t0:.0f} s; everything is in {Path(args.run_dir).resolve()}")
    return 0
