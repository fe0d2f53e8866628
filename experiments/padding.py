"""How much of an SFT batch is padding, in random batches and in length-grouped ones.

Reads a trajectories folder, gives each record its length as `mirg sft --train_sampling_strategy
group_by_length` does (`add_length_column`), then draws one epoch of batches both ways (torch's random order,
and transformers' `LengthGroupedSampler`, the sampler that option selects) and prints, as one JSON line each:
the share of the padded tokens that are the records' own, and the share of batches that hold one image count.

Usage (the measurement in docs/lab-notes/speed.md, "Training steps"):
    python experiments/padding.py --data runs/demo/data/trajectories --model embedded --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import sys


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


def summarize(name: str, groups: list[list[int]], lengths: list[int], images: list[int]) -> dict:
    own = sum(lengths[i] for g in groups for i in g)
    padded = sum(max(lengths[i] for i in g) * len(g) for g in groups)
    single = sum(len({images[i] for i in g}) == 1 for g in groups)
    return {"batches": name, "n": len(groups), "own_token_share": round(own / padded, 4),
            "one_image_count_share": round(single / len(groups), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a trajectories folder (sft.jsonl)")
    parser.add_argument("--model", default="embedded", help="the model whose processor counts tokens (default: embedded)")
    parser.add_argument("--batch-size", type=int, default=16, help="records per batch (default: 16, the demo's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both orders (default: 0)")
    opts = parser.parse_args()
    if opts.batch_size < 1:
        parser.error(f"--batch-size must be positive, got {opts.batch_size}")

    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from mirg.errors import MirgError
    from mirg.models import adapter_for, resolve_model_path
    from mirg.train.budget import count_tokens
    from mirg.train.common import load_processor_checked
    from mirg.train.data import load_stage_data
    from mirg.train.sft import add_length_column

    try:
        model = resolve_model_path(opts.model)
        adapter = adapter_for(model)
        processor = load_processor_checked(adapter, model)
        dataset, file, _ = load_stage_data(opts.data, "sft", adapter)
        tokens = count_tokens(dataset.with_format(None).to_list(), processor, file.parent, "sft")
    except MirgError as exc:
        print(f"padding: {exc}", file=sys.stderr)
        return 2
    raw = add_length_column(dataset, [s.total for s in tokens]).with_format(None)
    lengths, images = list(raw["length"]), [len(paths) for paths in raw["images"]]
    generator = torch.Generator().manual_seed(opts.seed)
    shuffled = torch.randperm(len(lengths), generator=generator).tolist()
    grouped = list(LengthGroupedSampler(opts.batch_size, lengths=lengths, generator=torch.Generator().manual_seed(opts.seed)))
    for name, order in (("random", shuffled), ("group_by_length", grouped)):
        print(json.dumps(summarize(name, batches(order, opts.batch_size), lengths, images)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
