"""Do the image tokens the language model receives still say what colour each object is?

Usage: python experiments/token_probe.py --data DIR MODEL [MODEL ...] [--n 300] [--seed 0]

For each model folder (e.g. the stage outputs under ``OUT/work/stages`` of ``mirg model pretrain-tiny``),
runs the one-image samples of DIR that hold at least two objects through the model and takes the language
model's input at every image token (the vision tower's output, before any text layer). Each token whose
cell centre lies inside an object is labelled with that object's colour; a linear softmax probe is fit on
70% of these tokens and scored on the other 30%. Prints one JSON line per model: tokens, train and test
accuracy (chance: about one in seven).

A vision stage that teaches the tower colour gives a probe near 1.0; what later SFT stages leave of it is
what the language model can still read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def token_colours(sample, n_tokens: int) -> list[str | None]:
    """Per image token (row-major over the square merged grid): the colour of the object holding the cell's
    centre, or None for background."""
    grid = round(n_tokens ** 0.5)
    width, height = sample.image_sizes[0]
    out: list[str | None] = []
    for k in range(n_tokens):
        cx, cy = (k % grid + 0.5) * width / grid, (k // grid + 0.5) * height / grid
        hit = [o for o in sample.objects[0] if o.bbox[0] <= cx < o.bbox[2] and o.bbox[1] <= cy < o.bbox[3]]
        out.append(str(hit[0].attributes["color"]) if hit else None)
    return out


def features(model_dir: str, samples, root: Path):
    """(features, colour labels) of the object tokens of ``samples`` at the language model's input."""
    import torch

    from mirg.eval.generate import load_images
    from mirg.models.registry import adapter_for

    adapter = adapter_for(model_dir)
    processor, model = adapter.load_processor(model_dir), adapter.load_model(model_dir).eval()
    image_token = model.config.image_token_id
    rows, labels = [], []
    for sample in samples:
        messages = adapter.user_message(sample.question, 1)
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = processor(text=[text], images=load_images(sample, root), return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states[0][0]
        positions = (enc["input_ids"][0] == image_token).nonzero().flatten().tolist()
        for pos, colour in zip(positions, token_colours(sample, len(positions))):
            if colour is not None:
                rows.append(hidden[pos].float())
                labels.append(colour)
    return torch.stack(rows), labels


def probe(x, labels: list[str], seed: int) -> dict[str, float]:
    """Train/test accuracy of a linear softmax probe (70/30 split, standardised features)."""
    import torch

    classes = sorted(set(labels))
    y = torch.tensor([classes.index(c) for c in labels])
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    train, test = order[: int(0.7 * len(y))], order[int(0.7 * len(y)):]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    x = (x - mean) / std
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], len(classes))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(500):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x[train]), y[train]).backward()
        opt.step()
    with torch.no_grad():
        acc = {name: (head(x[idx]).argmax(1) == y[idx]).float().mean().item() for name, idx in
               (("train", train), ("test", test))}
    return {"tokens": len(y), "classes": len(classes), **{f"{k}_acc": round(v, 3) for k, v in acc.items()}}


def main(argv: list[str] | None = None) -> int:
    from mirg.errors import MirgError
    from mirg.schema import read_manifest

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="model folders")
    parser.add_argument("--data", required=True, type=Path, help="dataset folder with object annotations")
    parser.add_argument("--n", type=int, default=300, help="samples used (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        samples = [s for s in read_manifest(args.data)
                   if s.num_images == 1 and s.objects and len(s.objects[0]) >= 2][: args.n]
        if not samples:
            raise MirgError(f"{args.data}: no one-image samples with two or more annotated objects")
        for model in args.models:
            x, labels = features(model, samples, args.data)
            print(json.dumps({"model": model, "samples": len(samples), **probe(x, labels, args.seed)}), flush=True)
    except MirgError as err:
        print(f"token_probe: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
