"""`mirg eval`: generate, score and report."""

from __future__ import annotations

import argparse

from mirg.geometry import SPACES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="generate answers with a model, score them and write a report",
        description="Batched greedy generation through the model's adapter into RUN/predictions.jsonl "
        "(resumable: rerun the same command after an interruption), then RUN/metrics.json, "
        "RUN/per_sample.jsonl, RUN/report.md and a self-contained RUN/report.html.",
    )
    p.add_argument("--model", required=True, metavar="M", help="model folder, or 'embedded'")
    p.add_argument("--data", required=True, metavar="D", help="manifest (.jsonl) or dataset folder")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="samples per generation batch (default 8)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N samples")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="generation backend (default hf)")
    p.add_argument("--coords", choices=SPACES, help="read boxes in this space (default: the model family's)")
    p.add_argument("--max-new-tokens", type=int, default=384, metavar="T", help="generation budget (default 384)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"],
                   help="dtype the weights are loaded in (default float32; bfloat16 on GPUs; auto: the checkpoint's)")
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="hf backend: auto (the GPU where one is visible), cpu, cuda or cuda:N (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mirg.eval.generate import GenerationSettings
    from mirg.eval.run import evaluate
    from mirg.report_text import metrics_table

    settings = GenerationSettings(args.batch_size, args.max_new_tokens, args.backend, args.dtype, args.device)
    metrics = evaluate(args.model, args.data, args.out, settings, args.limit, args.coords)
    print(metrics_table(metrics))
    print(f"wrote {args.out}/metrics.json and {args.out}/report.html")
    return 0
