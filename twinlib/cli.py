"""Command line: ``python -m twinlib run|chat|serve|export|sample-data``."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m twinlib", description="twin: a digital twin from your own chats.")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the numbered notebooks in order into one run directory (papermill)")
    run.add_argument("--export", action="append", metavar="PATH",
                     help="a chat export file or folder (repeatable); default: the notebook's default (the bundled sample)")
    run.add_argument("--me", help="your name as it appears in the export (default: inferred)")
    run.add_argument("--profile", default="tiny", help="tiny (CPU, default), t4 (Colab T4), gpu (24 GB+), or auto (t4/gpu when a CUDA GPU is present, else tiny)")
    run.add_argument("--base-model", help="any Hugging Face causal-LM id or local folder (overrides the profile's)")
    run.add_argument("--run-dir", required=True, help="folder for everything this run writes, e.g. runs/me")
    run.add_argument("--resume", action="store_true", help="continue a run directory, skipping finished stages")
    run.add_argument("--only", nargs="+", metavar="NN", help="run only these stages, e.g. --only 01 02")
    run.add_argument("--param", action="append", metavar="KEY=VALUE",
                     help="extra notebook parameter (JSON value or string), offered to every notebook that declares it")
    run.add_argument("--quiet", action="store_true", help="no per-cell progress bars")

    chat = sub.add_parser("chat", help="chat with the twin of a finished run in the terminal")
    chat.add_argument("--run", required=True, help="the run directory")
    chat.add_argument("--model", default=None, help="base, sft, refined, ppo or dpo (default: the most trained one)")

    # serve and export parse their own options (python -m twinlib serve --help)
    sub.add_parser("serve", help="serve the twin over an OpenAI-compatible API, with the live Turing test's pages",
                   add_help=False)
    sub.add_parser("export", help="export the twin: a Hugging Face folder, GGUF, or an Ollama Modelfile",
                   add_help=False)

    sample = sub.add_parser("sample-data", help="(re)generate the synthetic sample persona's chats")
    sample.add_argument("--out", default="data/sample")
    sample.add_argument("--seed", type=int, default=0)
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        from twinlib.serve import serve_main

        return serve_main(argv[1:])
    if argv and argv[0] == "export":
        from twinlib.export import export_main

        return export_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from twinlib.runner import main_run

        return main_run(args)
    if args.command == "chat":
        from twinlib.chat import chat_main

        return chat_main(args.run, model=args.model)
    if args.command == "sample-data":
        from twinlib.sample_data import generate_sample

        files = generate_sample(args.out, seed=args.seed)
        print("\n".join(str(f) for f in files))
        return 0
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
