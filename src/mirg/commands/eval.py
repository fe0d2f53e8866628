"""`mirg eval`: generate, score and report."""

from __future__ import annotations

import argparse

from mirg.options import renamed
from mirg.geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, SPACES

DESCRIPTION = """\
Answer every sample of a dataset with a model, score the answers and write a report.

--backend hf (default) or vllm runs a model folder in this process, batched and greedy. --backend openai
asks a served model instead: any OpenAI-compatible chat endpoint (vllm serve, SGLang, TGI, an API model);
--model is then the name it is served under, --base-url its API base, and --coords or --family says which
space its boxes are in (refused without one: a served model's box space can't be guessed).

Answers go to RUN/predictions.jsonl as they arrive (resumable: rerun the same command after an
interruption; nothing answered is asked or generated again), then RUN/metrics.json, RUN/per_sample.jsonl,
RUN/report.md and a self-contained RUN/report.html. RUN/run.json records what the predictions were made
with; resuming with another model, data or settings is refused.

Served models: a sample whose request keeps failing is recorded with its reason, scores as wrong and is
asked again by a rerun. The API key is read from --api-key-env only and is never printed or written.
--prompt migbench sends MIG-Bench's own wording: score such a run with
`mirg score --data BENCH.json --predictions RUN/predictions.jsonl --compat migbench`.
"""

#: Options that apply to one kind of backend only: (dest, flag, applies to the served backend).
BACKEND_FLAGS = [
    ("batch_size", "--batch-size", False), ("dtype", "--dtype", False), ("device", "--device", False),
    ("base_url", "--base-url", True), ("family", "--family", True), ("prompt", "--prompt", True),
    ("concurrency", "--concurrency", True), ("api_key_env", "--api-key-env", True),
    ("temperature", "--temperature", True), ("timeout", "--timeout", True), ("http_retries", "--http-retries", True),
    ("backoff", "--backoff", True), ("min_pixels", "--min-pixels", True), ("max_pixels", "--max-pixels", True),
]


def register(sub: argparse._SubParsersAction) -> None:
    from mirg.models.registry import supported_families

    p = sub.add_parser("eval", help="generate answers with a model (in-process or served), score them, write a report",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="M",
                   help="model folder, or 'embedded'; with --backend openai, the model name the endpoint serves")
    p.add_argument("--data", required=True, metavar="D", help="manifest (.jsonl) or dataset folder")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder")
    p.add_argument("--backend", choices=["hf", "vllm", "openai"], default="hf",
                   help="hf or vllm: a model folder in this process; openai: a served model (default hf)")
    p.add_argument("--max-samples", type=int, metavar="N", help="evaluate only the first N samples")
    renamed(p, "--limit", "--max-samples", type=int)
    p.add_argument("--coords", choices=SPACES, help="read boxes in this space (default: the model family's; a served model needs this or --family)")
    p.add_argument("--max-new-tokens", "--max-tokens", dest="max_new_tokens", type=int, metavar="T",
                   help="answer length limit in tokens (default 384 in-process, 1024 served)")
    local = p.add_argument_group("model folder (--backend hf or vllm)")
    local.add_argument("--batch-size", type=int, metavar="B", help="samples per generation batch (default 8)")
    local.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "auto"],
                       help="dtype the weights are loaded in (default float32; bfloat16 on GPUs; auto: the checkpoint's)")
    local.add_argument("--device", metavar="DEV",
                       help="hf backend: auto (the GPU where one is visible), cpu, cuda or cuda:N (default auto)")
    _served_arguments(p.add_argument_group("served model (--backend openai)"), supported_families())
    p.set_defaults(func=run)


def _served_arguments(g: argparse._ArgumentGroup, families: list[str]) -> None:
    g.add_argument("--base-url", metavar="URL", help="OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--family", choices=families,
                   help="the served model's family: its box space and pixel limits (instead of --coords)")
    g.add_argument("--prompt", choices=["mirg", "migbench", "migbench-think"],
                   help="mirg: mirg's answer format (default); migbench: MIG-Bench's own question wording, box only; "
                   "migbench-think: the same asking for <think>/<answer> tags (as R1-style models were evaluated)")
    g.add_argument("--concurrency", type=int, metavar="N", help="requests in flight at once (default 8)")
    g.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the API key (default OPENAI_API_KEY); never printed or written")
    g.add_argument("--temperature", type=float, metavar="T", help="sampling temperature (default 0: greedy)")
    g.add_argument("--timeout", type=float, metavar="S", help="seconds per request (default 120)")
    g.add_argument("--http-retries", type=int, metavar="N",
                   help="retries of one request on 429, 5xx, timeouts and connection errors (default 5)")
    g.add_argument("--backoff", type=float, metavar="S",
                   help="first retry delay in seconds, doubled each retry, plus jitter (default 1)")
    g.add_argument("--min-pixels", type=int, metavar="N",
                   help=f"resized space: the server's min_pixels (default: the family's, else {QWEN_MIN_PIXELS})")
    g.add_argument("--max-pixels", type=int, metavar="N",
                   help=f"resized space: the server's max_pixels (default: the family's, else {QWEN_MAX_PIXELS})")


def _refuse_other_backends_flags(args: argparse.Namespace) -> None:
    from mirg.errors import MirgError

    served = args.backend == "openai"
    wrong = [flag for dest, flag, for_served in BACKEND_FLAGS if for_served != served and getattr(args, dest) is not None]
    if wrong:
        where = "a model folder (--backend hf or vllm)" if served else "--backend openai"
        raise MirgError(f"{', '.join(wrong)} applies only to {where}")


def run(args: argparse.Namespace) -> int:
    from mirg.eval.report_text import metrics_table

    _refuse_other_backends_flags(args)
    if args.backend == "openai":
        return _run_served(args)
    from mirg.eval.generate import GenerationSettings
    from mirg.eval.run import evaluate

    settings = GenerationSettings(8 if args.batch_size is None else args.batch_size,
                                  384 if args.max_new_tokens is None else args.max_new_tokens, args.backend,
                                  args.dtype or "float32", args.device or "auto")
    metrics = evaluate(args.model, args.data, args.out, settings, args.max_samples, args.coords)
    print(metrics_table(metrics))
    print(f"wrote {args.out}/metrics.json and {args.out}/report.html")
    return 0


def served_settings(args: argparse.Namespace):
    """The served backend's settings from the flags; bad values are refused before any file is read."""
    from mirg.chat_client import ChatConfig
    from mirg.errors import MirgError
    from mirg.eval.served import ServedSettings, served_space

    if not args.base_url:
        raise MirgError("--backend openai needs --base-url (the API base, e.g. http://127.0.0.1:8000/v1)")
    given = {key: value for key, value in (
        ("api_key_env", args.api_key_env), ("concurrency", args.concurrency), ("timeout", args.timeout),
        ("http_retries", args.http_retries), ("backoff", args.backoff)) if value is not None}
    chat = ChatConfig(base_url=args.base_url, model=args.model, **{"concurrency": 8, **given},
                      temperature=0.0 if args.temperature is None else args.temperature,
                      max_tokens=1024 if args.max_new_tokens is None else args.max_new_tokens)
    space = served_space(args.coords, args.family, args.min_pixels, args.max_pixels)
    return ServedSettings(chat, space, args.prompt or "mirg")


def _run_served(args: argparse.Namespace) -> int:
    from mirg.eval.served import evaluate_served
    from mirg.eval.report_text import metrics_table

    settings = served_settings(args)
    metrics, asked = evaluate_served(settings, args.data, args.out, args.max_samples)
    print(metrics_table(metrics))
    overall = metrics["overall"]
    print(f"asked {asked.asked} sample(s) in {asked.seconds:.1f} s ({asked.rate:.1f} samples/s); "
          f"{overall['failed_requests']} got no answer, {overall['unreadable_replies']} unreadable")
    if settings.prompt != "mirg":
        print(f"MIG-Bench's prompt: for the benchmark's own numbers run `mirg score --data BENCH.json "
              f"--predictions {args.out}/predictions.jsonl --compat migbench --out METRICS.json`")
    print(f"wrote {args.out}/metrics.json and {args.out}/report.html")
    return 0
