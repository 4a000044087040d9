"""Benchmark: twinlib's WhatsApp reader against chat-miner's, on one synthetic Android export.

    python bench/parse_bench.py [--messages 200000] [--format whatsapp]

Writes a made-up export (random letter strings as words, made-up names; multi-line messages,
``<Media omitted>`` lines and system lines) to a temporary folder, then parses it with
``twinlib.data.read_export`` and with chat-miner's ``WhatsAppParser`` (``pip install chat-miner``),
each in its own Python process so that each peak memory (peak RSS) is its own. A third row times
the WhatsApp reader alone (``twinlib.data.whatsapp.read``), without the dispatcher's format
detection and normalizing, to show where the time goes.

Times cover the parse only (imports excluded); chat-miner's time includes building its table
(``get_df()``), as ``read_export`` returns one too. messages/s = messages in the file / wall-clock
seconds. CPU seconds are printed too: on a shared machine they vary less than wall-clock time.

A second table times the anonymizer (``twinlib.privacy.Anonymizer.anonymize``) on the messages the
reader returned, twice, each in its own process: the current ``twinlib/privacy.py``, and the one
before it learned text without word boundaries (CJK names, digit-boundary detection, addresses,
IDs), taken from git at :data:`ANON_BASELINE_REV` — so the comparison can be made again at any
time (``--no-anon`` skips it; without git the baseline row is left out). Building the recognizers
(Presidio's engine) is timed apart from the anonymization itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

NAMES = ["Ada Quill", "Bo", "Cyra Lenn", "+00 000 000 0042"]
SYSTEM_LINES = ["Ada Quill added Bo", "Bo left", "Cyra Lenn changed this group's icon"]
SIDES = {"twinlib": "read_export", "reader only": "whatsapp.read", "chat-miner": "WhatsAppParser"}
# twinlib/privacy.py as it was before CJK support (the last commit that changed it before then).
ANON_BASELINE_REV = "0d09bb25598560dbc200d61ba06c1f0345c5b4ee"
ANON_SIDES = {"anonymizer now": "twinlib/privacy.py", "anonymizer before": f"git {ANON_BASELINE_REV[:7]}"}


def generate(path: Path, n: int, seed: int = 7) -> None:
    """Write an Android-style export of ``n`` messages: ~5 % multi-line, ~4 % media, ~1 % system."""
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rnd.choice(letters) for _ in range(rnd.randint(1, 9))) for _ in range(3000)]

    def words(k: int) -> str:
        return " ".join(rnd.choices(vocab, k=k))

    t = datetime(2019, 1, 1, 8, 0)
    out = [t.strftime("%d/%m/%Y, %H:%M") + " - Messages and calls are end-to-end encrypted. "
           "No one outside of this chat, not even WhatsApp, can read or listen to them."]
    for _ in range(n - 1):
        t += timedelta(seconds=rnd.randint(0, 900))
        stamp = t.strftime("%d/%m/%Y, %H:%M") + " - "
        r = rnd.random()
        if r < 0.01:
            out.append(stamp + rnd.choice(SYSTEM_LINES))
        elif r < 0.05:
            out.append(stamp + rnd.choice(NAMES) + ": <Media omitted>")
        elif r < 0.10:
            lines = [words(rnd.randint(1, 12)) for _ in range(rnd.randint(2, 4))]
            out.append(stamp + rnd.choice(NAMES) + ": " + "\n".join(lines))
        else:
            out.append(stamp + rnd.choice(NAMES) + ": " + words(rnd.randint(1, 20)))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _parser(side: str, fmt: str | None):
    """Import everything ``side`` needs and return a function path -> number of rows."""
    if side == "chat-miner":
        import logging

        from chatminer.chatparsers import WhatsAppParser

        logging.disable(logging.INFO)  # chat-miner logs every system line

        def parse(path: str) -> int:
            parser = WhatsAppParser(path)
            parser.parse_file()
            return len(parser.parsed_messages.get_df())

        return parse

    import importlib

    from twinlib.data import FORMATS, read_export, whatsapp

    for module in set(FORMATS.values()):  # format detection imports every reader: do it now
        importlib.import_module(f"twinlib.data.{module}")
    if side == "reader only":
        return lambda path: len(whatsapp.read(Path(path)))
    return lambda path: len(read_export(path, format=fmt))


def _privacy_module(side: str):
    """The ``twinlib.privacy`` module to time: the current one, or the baseline read from git."""
    if side == "anonymizer now":
        from twinlib import privacy

        return privacy
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "show", f"{ANON_BASELINE_REV}:twinlib/privacy.py"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    folder = Path(tempfile.mkdtemp())
    file = folder / "privacy_baseline.py"
    file.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("privacy_baseline", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anon_worker(side: str, path: str, fmt: str | None) -> dict:
    """Anonymize the messages of ``path`` once with one privacy module; runs in a child process."""
    from twinlib.data import read_export

    privacy = _privacy_module(side)
    messages = read_export(path, format=fmt)
    anon = privacy.Anonymizer.from_messages(messages, me=NAMES[0])
    start = time.perf_counter()
    privacy._analyzer(anon.phone_regions)  # build the recognizers (Presidio's engine) once
    build = time.perf_counter() - start
    before = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    out = anon.anonymize(messages)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "rows": len(out),
            "changed": anon.summary["messages_changed"], "build_seconds": build,
            "rss_before_mb": before, "rss_peak_mb": _rss_mb()}


def worker(side: str, path: str, fmt: str | None) -> dict:
    """Parse ``path`` once with one side; runs in a child process."""
    if side in ANON_SIDES:
        return anon_worker(side, path, fmt)
    parse = _parser(side, fmt)
    before = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    rows = parse(path)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "rows": rows,
            "rss_before_mb": before, "rss_peak_mb": _rss_mb()}


def run_side(side: str, path: Path, fmt: str | None) -> dict:
    """Run :func:`worker` in a fresh interpreter and return its measurements."""
    cmd = [sys.executable, __file__, "--worker", side, str(path)] + (["--format", fmt] if fmt else [])
    env = dict(os.environ, TQDM_DISABLE="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000, help="messages in the synthetic export")
    ap.add_argument("--format", default=None, help="force twinlib's reader (default: detect)")
    ap.add_argument("--no-anon", action="store_true", help="skip the anonymizer timing")
    ap.add_argument("--anon-only", action="store_true", help="time only the anonymizer (no reader comparison)")
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.format)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "WhatsApp Chat with Bench.txt"
        generate(path, args.messages)
        size_mb = path.stat().st_size / 1e6
        results = {} if args.anon_only else {side: run_side(side, path, args.format) for side in SIDES}
        anon = {}
        if not args.no_anon:
            anon["anonymizer now"] = run_side("anonymizer now", path, args.format)
            if _git_has_baseline():
                anon["anonymizer before"] = run_side("anonymizer before", path, args.format)

    print(f"WhatsApp reader benchmark: {args.messages:,} messages, {size_mb:.1f} MB synthetic Android "
          f"export, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if results:
        _print_readers(results, args.messages)
    if anon:
        _print_anonymizer(anon)


def _print_readers(results: dict, messages: int) -> None:
    print(f"{'side':<13}{'call':<16}{'rows out':>9}{'seconds':>9}{'CPU s':>8}{'msgs/s':>10}"
          f"{'peak RSS':>11}{'RSS growth':>12}")
    for side, r in results.items():
        print(f"{side:<13}{SIDES[side]:<16}{r['rows']:>9,}{r['seconds']:>9.2f}{r['cpu_seconds']:>8.2f}"
              f"{messages / r['seconds']:>10,.0f}{r['rss_peak_mb']:>8.0f} MB"
              f"{r['rss_peak_mb'] - r['rss_before_mb']:>9.0f} MB")
    ours, theirs = results["twinlib"], results["chat-miner"]
    print(f"speed-up, read_export vs chat-miner: {theirs['seconds'] / ours['seconds']:.1f}x wall-clock, "
          f"{theirs['cpu_seconds'] / ours['cpu_seconds']:.1f}x CPU")
    print("rows out: twinlib keeps system and media lines (as kinds); chat-miner drops system lines. "
          "RSS growth: peak minus the resident memory after imports.")


def _print_anonymizer(anon: dict) -> None:
    rows = next(iter(anon.values()))["rows"]
    print()
    print(f"Anonymizer on the same {rows:,} messages (Anonymizer.anonymize; the recognizers are built "
          f"beforehand, their build time is its own column)")
    print(f"{'side':<19}{'code':<22}{'changed':>9}{'seconds':>9}{'CPU s':>8}{'msgs/s':>10}{'build s':>9}"
          f"{'peak RSS':>11}")
    for side, r in anon.items():
        print(f"{side:<19}{ANON_SIDES[side]:<22}{r['changed']:>9,}{r['seconds']:>9.2f}{r['cpu_seconds']:>8.2f}"
              f"{r['rows'] / r['seconds']:>10,.0f}{r['build_seconds']:>9.2f}{r['rss_peak_mb']:>8.0f} MB")
    if len(anon) == 2:
        now, before = anon["anonymizer now"], anon["anonymizer before"]
        print(f"anonymizer now vs before: {now['seconds'] / before['seconds']:.2f}x the wall-clock time, "
              f"{now['cpu_seconds'] / before['cpu_seconds']:.2f}x the CPU time (budget: 2x)")
    else:
        print(f"(no baseline row: git or the commit {ANON_BASELINE_REV[:7]} is not available here)")


def _git_has_baseline() -> bool:
    """Whether the baseline privacy.py can be read from git in this checkout."""
    try:
        done = subprocess.run(["git", "cat-file", "-e", f"{ANON_BASELINE_REV}:twinlib/privacy.py"],
                              cwd=Path(__file__).resolve().parents[1], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


if __name__ == "__main__":
    main()
