"""Give a trained tiny base one token per synthetic label, as `mirg model init-tiny --label-tokens` does at birth.

Usage: python experiments/add_label_tokens.py --model MODEL --out DIR

The label tokens (`` red circle``: :func:`mirg.architectures.tokenizer.label_token_texts`) are added to MODEL's
tokenizer, the embedding table grows by one row each, and each row starts at the mean of its colour's and its
shape's rows (:func:`mirg.architectures.tiny.init_label_embeddings`); the model and its processor are saved to DIR.
It lets a base already trained with two-word labels be fine-tuned with one token per label (the pilot in
docs/lab-notes/embedded-base.md) without training it again from random weights.
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
    from mirg.models import resolve_model_path
    from mirg.architectures.tiny import add_label_tokens_to

    try:
        before, after = add_label_tokens_to(resolve_model_path(opts.model), Path(opts.out))
    except MirgError as exc:
        print(f"add_label_tokens: {exc}", file=sys.stderr)
        return 2
    print(f"added {after - before} label tokens: vocabulary {before} -> {after}; saved to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
