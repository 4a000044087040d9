"""Throughput and latency of ``python -m twinlib serve`` at 1, 4 and 16 concurrent clients.

    python bench/serve_bench.py                      # the tiny toy twin, 48 requests per level
    python bench/serve_bench.py --run runs/sample    # a real run's best model
    python bench/serve_bench.py --requests 96 --workers 4 --json bench_serve.json

The server is the real command, in its own process on a free loopback port (its own CPU time,
not the clients'); the clients are threads of this process, each sending chat completions
through the official ``openai`` client one after another. Every request is the same size: a
short conversation (two earlier turns and the message answered), ``max_tokens`` fixed,
sampling at the profile's temperature with a per-request seed, so every level asks for the same
work. Reported per level: requests per second (completed requests over the level's wall time),
tokens written per second, and the median (p50) and 95th percentile (p95) latency of a request.
Without ``--run`` the model is the toy twin (:func:`twinlib.ppo.build_toy_twin`, about a minute
to build on 2 cores the first time, cached in a temporary folder for the run of this script).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twinlib.browser import stop_process_group  # noqa: E402


def toy_run(folder: Path) -> Path:
    from twinlib.ppo import build_toy_twin

    build_toy_twin(folder / "models" / "sft")
    return folder


def start_server(run: Path, model: str, workers: int) -> tuple[subprocess.Popen, str]:
    import httpx

    from twinlib.serve import free_port

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "twinlib", "serve", "--run", str(run), "--model", model,
                             "--port", str(port), "--workers", str(workers), "--no-turing"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_process_group(proc)
            raise SystemExit("the server did not answer within 300 s")
        time.sleep(0.3)




MESSAGES = [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "yo"},
            {"role": "user", "content": "what are you doing tonight?"}]


def level(base: str, clients: int, requests: int, max_tokens: int) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=300)
    latencies: list[float] = []
    tokens: list[int] = []

    def one(i: int):
        t0 = time.perf_counter()
        r = client.chat.completions.create(model="twin", messages=MESSAGES, max_tokens=max_tokens, seed=i)
        latencies.append(time.perf_counter() - t0)
        tokens.append(r.usage.completion_tokens)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    qs = statistics.quantiles(latencies, n=20, method="inclusive")
    return {"clients": clients, "requests": len(latencies), "seconds": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 2), "tokens_per_s": round(sum(tokens) / wall, 1),
            "mean_tokens": round(sum(tokens) / len(tokens), 1),
            "p50_ms": round(statistics.median(latencies) * 1000), "p95_ms": round(qs[18] * 1000)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=None, help="a run directory (default: the toy twin, built in a temporary folder)")
    ap.add_argument("--model", default="best")
    ap.add_argument("--levels", default="1,4,16", help="concurrent clients per level (default 1,4,16)")
    ap.add_argument("--requests", type=int, default=48, help="requests per level (default 48)")
    ap.add_argument("--max-tokens", type=int, default=24, help="max_tokens of every request (default 24)")
    ap.add_argument("--workers", type=int, default=2, help="the server's generation workers (default 2)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="twin-serve-bench-") as tmp:
        run = Path(args.run) if args.run else toy_run(Path(tmp))
        model = args.model if args.run else "sft"
        print(f"serving {run} ({model}) with {args.workers} workers; {args.requests} requests per level, "
              f"max_tokens {args.max_tokens}", flush=True)
        proc, base = start_server(run, model, args.workers)
        try:
            level(base, 2, 4, args.max_tokens)  # warm-up: first calls pay for lazy imports
            rows = [level(base, int(c), args.requests, args.max_tokens) for c in args.levels.split(",")]
        finally:
            stop_process_group(proc)

    print(f"\n{'clients':>7} {'requests/s':>10} {'tokens/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'tokens/reply':>12}")
    for r in rows:
        print(f"{r['clients']:>7} {r['requests_per_s']:>10} {r['tokens_per_s']:>9} {r['p50_ms']:>7} {r['p95_ms']:>7} "
              f"{r['mean_tokens']:>12}")
    if args.json:
        Path(args.json).write_text(json.dumps({"workers": args.workers, "levels": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
