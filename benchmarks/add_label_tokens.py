"""Give a trained tiny base one token per synthetic label, as `mirg model init-tiny --label-tokens` does at birth.

Usage: python benchmarks/add_label_tokens.py --model MODEL --out DIR

The label tokens (`` red circle``: :func:`mirg.models.tokenizer.label_token_texts`) are added to MODEL's
tokenizer, the embedding table grows by one row each, and each row starts at the mean of its colour's and its
shape's rows (:func:`mirg.models.tiny.init_label_embeddings`); the model and its processor are saved to DIR.
It lets a base already trained with two-word labels be fine-tuned with one token per label (the pilot in
benchmarks/RESULTS.md) without training it again from random weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder or `embedded`")
    parser.add_argument("--out", required=True, help="new folder for the model with label tokens")
    opts = parser.parse_args()
    from mirg.errors import MirgError
    from mirg.models import adapter_for, resolve_model_path
    from mirg.models.tiny import init_label_embeddings
    from mirg.models.tokenizer import add_label_tokens

    try:
        source, out = resolve_model_path(opts.model), Path(opts.out)
        if out.exists() and any(out.iterdir()):
            raise MirgError(f"{out} exists and is not empty; choose a new --out folder")
        adapter = adapter_for(source)
        processor, model = adapter.load_processor(source), adapter.load_model(source)
        tokenizer = processor.tokenizer
        before = len(tokenizer)
        added = add_label_tokens(tokenizer)
        if added == 0:
            raise MirgError(f"{source} already has every label token")
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        model.config.get_text_config().vocab_size = len(tokenizer)
        init_label_embeddings(model, tokenizer)
    except MirgError as exc:
        print(f"add_label_tokens: {exc}", file=sys.stderr)
        return 2
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    print(f"added {added} label tokens: vocabulary {before} -> {len(tokenizer)}; saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
