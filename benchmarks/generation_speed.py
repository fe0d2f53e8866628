"""How fast does a model sample completions on this machine, and do transformers' cache options change it?

Usage: python benchmarks/generation_speed.py --model DIR --data DIR [--batch 8] [--tokens 150] [--repeats 3]
       [--cache dynamic|static|compiled]

Takes the first --batch samples of the dataset, builds their prompts as `mirg eval` does (the model's adapter,
left padding), and samples exactly --tokens new tokens per sequence at temperature 1 (as GRPO's generation
does), --repeats times. Prints one line per repeat: seconds and milliseconds per decoding step. ``static`` uses
``cache_implementation="static"``; ``compiled`` adds a ``CompileConfig`` that compiles the decoding forward on
any device (inductor on a CPU; the first call pays the compilation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def generation_kwargs(cache: str, pad_id: int, tokens: int) -> dict:
    kwargs = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, temperature=1.0, use_cache=True,
                  pad_token_id=pad_id)
    if cache in ("static", "compiled"):
        kwargs["cache_implementation"] = "static"
    if cache == "compiled":
        from transformers import CompileConfig

        config = CompileConfig(fullgraph=False, dynamic=False)
        config._compile_all_devices = True  # transformers compiles on CUDA only unless told
        kwargs["compile_config"] = config
    return kwargs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", choices=("dynamic", "static", "compiled"), default="dynamic")
    opts = parser.parse_args()
    if min(opts.batch, opts.tokens, opts.repeats) < 1:
        parser.error("--batch, --tokens and --repeats must be at least 1")

    import torch

    from mirg.errors import MirgError
    from mirg.eval.generate import GenerationSettings, HFGenerator, load_images
    from mirg.eval.run import load_eval_data
    from mirg.models.registry import resolve_model_path

    try:
        samples, root = load_eval_data(opts.data, opts.batch)  # a dataset folder or its manifest
        generator = HFGenerator(resolve_model_path(opts.model), GenerationSettings(batch_size=opts.batch))
        texts = [generator.prompt_text(s) for s in samples]
        images = [load_images(s, root) for s in samples]
    except MirgError as exc:
        print(f"generation_speed: {exc}", file=sys.stderr)
        return 2
    inputs = generator.processor(text=texts, images=images, padding=True, return_tensors="pt")
    kwargs = generation_kwargs(opts.cache, generator.processor.tokenizer.pad_token_id, opts.tokens)
    print(f"{len(samples)} prompts of {inputs['input_ids'].shape[1]} tokens, cache {opts.cache}")
    for repeat in range(opts.repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            out = generator.model.generate(**inputs, **kwargs)
        seconds = time.perf_counter() - start
        steps = out.shape[1] - inputs["input_ids"].shape[1]
        print(f"repeat {repeat}: {seconds:.2f} s for {steps} tokens, {1000 * seconds / steps:.2f} ms a step", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
