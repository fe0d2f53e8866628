"""What can GRPO's groups teach the greedy answer? For each held-out sample: the greedy answer and K completions
sampled as GRPO samples them (temperature 1 by default), each scored with `mirg score`'s image-aware IoU.

Usage: python experiments/sampling_headroom.py --model DIR --data DIR [--limit 500] [--k 4] [--temperature 1.0]
       [--batch-size 8] [--seed 0] [--out FILE.json]

GRPO moves probability towards the completions of a group that score above the group's mean. Evaluation reads
the greedy answer, so what stage 2 can add to it is bounded by the samples where the greedy answer is wrong
(acc@0.5) and at least one of the K sampled completions is right: the `headroom` column. `regress` counts the
opposite (greedy right, at least one sample wrong), the completions whose negative advantage only sharpens what
greedy decoding already does. Prints a per-task table and the task means; --out writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

THRESHOLD = 0.5


def correct(score) -> bool:
    return score.iou >= THRESHOLD


def sample_batch(generator, samples, root, k: int, temperature: float, max_new_tokens: int) -> list[list[str]]:
    """Greedy first, then ``k`` sampled completions, for each sample of the batch: ``[[greedy, s1..sk], ...]``."""
    from mirg.eval.generate import load_images

    texts = [generator.prompt_text(s) for s in samples]
    images = [load_images(s, root) for s in samples]
    inputs = generator.processor(text=texts, images=images, padding=True, return_tensors="pt")
    inputs = inputs.to(generator.model.device)
    pad_id = generator.processor.tokenizer.pad_token_id
    common = dict(max_new_tokens=max_new_tokens, use_cache=True, pad_token_id=pad_id)
    with generator.torch.inference_mode():
        greedy = generator.model.generate(**inputs, do_sample=False, **common)
        sampled = generator.model.generate(**inputs, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                                           num_return_sequences=k, **common)
    start = inputs["input_ids"].shape[1]
    decode = generator.processor.batch_decode
    greedy_text = decode(greedy[:, start:], skip_special_tokens=True)
    sampled_text = decode(sampled[:, start:], skip_special_tokens=True)
    return [[greedy_text[i], *sampled_text[i * k:(i + 1) * k]] for i in range(len(samples))]


def tally(rows: list[tuple[str, bool, list[bool]]]) -> dict[str, dict[str, float]]:
    """Per task: greedy acc, sampled acc (mean over the K), pass@K, headroom and regress, as fractions."""
    by_task: dict[str, list[tuple[bool, list[bool]]]] = {}
    for task, greedy, samples in rows:
        by_task.setdefault(task, []).append((greedy, samples))
    table = {}
    for task, items in sorted(by_task.items()):
        n = len(items)
        table[task] = {
            "n": n,
            "greedy": sum(g for g, _ in items) / n,
            "sampled": sum(sum(s) / len(s) for _, s in items) / n,
            "pass@k": sum(any(s) for _, s in items) / n,
            "headroom": sum((not g) and any(s) for g, s in items) / n,
            "regress": sum(g and not all(s) for g, s in items) / n,
        }
    keys = ["greedy", "sampled", "pass@k", "headroom", "regress"]
    table["task mean"] = {"n": len(rows), **{key: sum(t[key] for t in table.values()) / len(by_task) for key in keys}}
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder (`mirg sft` / `mirg grpo` output)")
    parser.add_argument("--data", type=Path, required=True, help="a dataset folder or manifest (`mirg data synth`)")
    parser.add_argument("--max-samples", type=int, default=500, help="the first N samples (default 500)")
    parser.add_argument("--k", type=int, default=4, help="completions sampled per sample (default 4, the demo's group)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0, GRPO's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=320, help="(default 320, the demo's GRPO limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()

    from tqdm import tqdm

    from mirg.errors import MirgError
    from mirg.eval.generate import GenerationSettings, HFGenerator, batches
    from mirg.eval.run import load_eval_data
    from mirg.models.registry import resolve_model_path
    from mirg.eval.scoring import score_response

    if min(args.k, args.batch_size, args.max_new_tokens) < 1 or not args.temperature > 0:
        print("error: --k, --batch-size and --max-new-tokens must be at least 1 and --temperature above 0",
              file=sys.stderr)
        return 2
    try:
        samples, root = load_eval_data(args.data, args.limit)
        generator = HFGenerator(resolve_model_path(args.model), GenerationSettings(batch_size=args.batch_size))
    except MirgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    generator.torch.manual_seed(args.seed)
    space = generator.adapter.coord_space()
    rows = []
    with tqdm(total=len(samples), desc=f"greedy + {args.k} samples", unit="sample") as bar:
        for batch in batches(samples, args.batch_size):
            for sample, texts in zip(batch, sample_batch(generator, batch, root, args.k, args.temperature,
                                                         args.max_new_tokens)):
                ok = [correct(score_response(sample, text, space)) for text in texts]
                rows.append((sample.task, ok[0], ok[1:]))
            bar.update(len(batch))
    table = tally(rows)
    print(f"{args.model} on {len(rows)} samples of {args.data}; K={args.k}, temperature {args.temperature}, "
          f"acc@{THRESHOLD} in %")
    print(f"{'task':<22}{'n':>5}{'greedy':>9}{'sampled':>9}{'pass@k':>9}{'headroom':>10}{'regress':>9}")
    for task, row in table.items():
        print(f"{task:<22}{row['n']:>5}" + "".join(f"{100 * row[key]:>{w}.1f}" for key, w in
                                                   (("greedy", 9), ("sampled", 9), ("pass@k", 9), ("headroom", 10),
                                                    ("regress", 9))))
    if args.out:
        args.out.write_text(json.dumps({"model": str(args.model), "data": str(args.data), "k": args.k,
                                        "temperature": args.temperature, "seed": args.seed, "tasks": table},
                                       indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
