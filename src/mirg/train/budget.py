"""Token budgets: what each sample costs the model, counted before any weights load, and checked against the run.

A sample's tokens are its chat-templated text (SFT: prompt and completion, as TRL's collator joins them; GRPO: the
prompt with the generation prompt, as TRL tokenizes it) with every image placeholder expanded to the tokens the
processor turns that image into at the run's pixel limits. The processor is asked (Qwen's resize to multiples of
patch x merge, LLaVA's fixed count), never a second copy of its arithmetic. No pixels are read: image sizes come
from the rows' ``image_sizes`` and, where a row has none, from each image file's header (read once per file).

The limits a sample must fit (:func:`run_limits`): SFT's ``max_length`` (TRL cuts a longer sequence, image tokens
included, and the model then fails with "Image features and image tokens do not match"); GRPO's prompt plus
``max_completion_length`` within vLLM's context (``vllm_max_model_length``) or the model's
``max_position_embeddings``, and with vLLM at most ``vllm_max_images`` images. A sample over them is refused in one
line, or, with ``drop_overlong``, left out and counted: never cut.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mirg.errors import MirgError, first_line

#: Records at which counting shows a progress bar.
PROGRESS_FROM = 2000
#: Conversations rendered and tokenized at a time.
CHUNK = 1000


@dataclass(frozen=True)
class SampleTokens:
    """One record's cost: its text tokens (image placeholders left out) and its images' tokens."""

    record: int  # 1-based position in the data file's records
    id: str
    task: str
    images: int
    text: int
    image: int

    @property
    def total(self) -> int:
        return self.text + self.image


# -- counting ---------------------------------------------------------------------------------------------


def is_size(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))


def record_image_sizes(records: Sequence[dict], root: Path) -> list[list[tuple[int, int]]]:
    """Each record's image sizes as ``(width, height)``: its ``image_sizes`` where it has them for every image,
    else each file's header (read once per file; no pixels are decoded)."""
    headers: dict[Path, tuple[int, int]] = {}
    sizes = []
    for record in records:
        given = record.get("image_sizes")
        if isinstance(given, list) and len(given) == len(record["images"]) and all(map(is_size, given)):
            sizes.append([(w, h) for w, h in given])
        else:
            sizes.append([header_size(root / rel, headers) for rel in record["images"]])
    return sizes


def header_size(path: Path, cache: dict[Path, tuple[int, int]]) -> tuple[int, int]:
    """``(width, height)`` from an image file's header."""
    if path not in cache:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                cache[path] = image.size
        except (OSError, UnidentifiedImageError) as exc:
            raise MirgError(f"{path}: not an image that can be read ({first_line(exc)})") from None
    return cache[path]


def tokens_per_image(processor, sizes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """The tokens one image of each ``(width, height)`` becomes, asked of the processor at its pixel limits."""
    unique = sorted(set(sizes))
    if not unique:
        return {}
    count = getattr(processor, "_get_num_multimodal_tokens", None)
    if count is not None:
        counts = count(image_sizes=[(h, w) for w, h in unique]).num_image_tokens
        return dict(zip(unique, counts))
    from PIL import Image  # a processor that cannot say: expand one blank image of each size

    token = processor.image_token
    return {size: len(processor(text=[token], images=[Image.new("RGB", size)], return_tensors=None)["input_ids"][0])
            for size in unique}


def image_token_id(processor) -> int:
    token_id = getattr(processor, "image_token_id", None)
    return token_id if isinstance(token_id, int) else processor.tokenizer.convert_tokens_to_ids(processor.image_token)


def conversation(record: dict, stage: str) -> list[dict]:
    return record["prompt"] + record["completion"] if stage == "sft" else record["prompt"]


def text_token_ids(processor, records: Sequence[dict], stage: str) -> list[list[int]]:
    """The chat-templated token ids of each record, one placeholder token per image: SFT's prompt and completion,
    GRPO's prompt with the generation prompt (how TRL tokenizes each stage)."""
    from tqdm.auto import tqdm

    ids = []
    with tqdm(total=len(records), desc="counting tokens", unit="sample", disable=len(records) < PROGRESS_FROM,
              file=sys.stderr) as bar:
        for start in range(0, len(records), CHUNK):
            chunk = [conversation(r, stage) for r in records[start:start + CHUNK]]
            texts = processor.apply_chat_template(chunk, tokenize=False, add_generation_prompt=stage != "sft")
            ids += encode(processor.tokenizer, texts)
            bar.update(len(chunk))
    return ids


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of ``texts`` (no special tokens added): the fast tokenizer's own batch encoder where there is one,
    which skips the conversion of every encoding to the tokenizer's output dictionary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def count_tokens(records: Sequence[dict], processor, root: Path, stage: str) -> list[SampleTokens]:
    """Every record's text and image tokens at the processor's pixel limits (see the module's docstring)."""
    sizes = record_image_sizes(records, root)
    per_size = tokens_per_image(processor, [s for row in sizes for s in row])
    placeholder = image_token_id(processor)
    counted = []
    for i, (record, ids, row) in enumerate(zip(records, text_token_ids(processor, records, stage), sizes), start=1):
        placeholders = ids.count(placeholder)
        if placeholders != len(row):
            raise MirgError(f"record {i}: the chat template writes {placeholders} image placeholder(s) for "
                            f"{len(row)} image(s)")
        counted.append(SampleTokens(i, str(record.get("id", i)), str(record.get("task", "-")), len(row),
                                    len(ids) - placeholders, sum(per_size[s] for s in row)))
    return counted


# -- limits ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What a sample must fit. ``tokens``: the most a sample may need, its tokens plus ``completion`` (the tokens
    GRPO generates after the prompt; 0 for SFT, whose completion is counted); ``images``: the most images."""

    tokens: int | None
    tokens_name: str
    completion: int = 0
    images: int | None = None
    images_name: str = ""
    #: The option that raises ``tokens`` (None where none can: the model's own context).
    tokens_flag: str | None = None

    def need(self, sample: SampleTokens) -> int:
        return sample.total + self.completion

    def describe(self) -> dict[str, Any]:
        limits = {self.tokens_name: self.tokens}
        if self.completion:
            limits["max_completion_length"] = self.completion
        if self.images_name:
            limits[self.images_name] = self.images
        return limits


def model_context(model_path: Path) -> int | None:
    """The language model's ``max_position_embeddings`` from the folder's config.json, if it says."""
    from mirg.models.base import read_json

    config = read_json(model_path / "config.json")
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    value = text.get("max_position_embeddings", config.get("max_position_embeddings"))
    return value if isinstance(value, int) and value > 0 else None


def run_limits(args, stage: str, model_path: Path) -> Limits:
    """The limits of this run: SFT's ``max_length``; GRPO's context (vLLM's, else the model's) and, with vLLM, its
    images per prompt."""
    if stage == "sft":
        return Limits(args.max_length, "max_length", tokens_flag="max_length")
    completion = args.max_completion_length
    if not args.use_vllm:
        return Limits(model_context(model_path), "max_position_embeddings", completion)
    if args.vllm_max_model_length is not None:
        context, name = args.vllm_max_model_length, "vllm_max_model_length"
    else:  # vLLM takes the model's context when it is not given one
        context, name = model_context(model_path), "max_position_embeddings"
    return Limits(context, name, completion, args.vllm_max_images, "vllm_max_images", "vllm_max_model_length")


# -- checking --------------------------------------------------------------------------------------------


def over_tokens(samples: Sequence[SampleTokens], limits: Limits) -> list[SampleTokens]:
    return [s for s in samples if limits.tokens is not None and limits.need(s) > limits.tokens]


def over_images(samples: Sequence[SampleTokens], limits: Limits) -> list[SampleTokens]:
    return [s for s in samples if limits.images is not None and s.images > limits.images]


def tokens_problem(over: list[SampleTokens], total: int, limits: Limits, file: Path) -> str:
    """One line: how many samples are too long, the longest, and the ways out."""
    worst = max(over, key=limits.need)
    need = limits.need(worst)
    what = (f"are longer than {limits.tokens_name} {limits.tokens}" if not limits.completion else
            f"need more than {limits.tokens_name} {limits.tokens} tokens with max_completion_length "
            f"{limits.completion}")
    raise_it = f"raise --{limits.tokens_flag.replace('_', '-')} to {need}, " if limits.tokens_flag else ""
    lower = "--max-pixels" + (" or --max-completion-length" if limits.completion else "")
    cut = "TRL would cut them, image tokens included" if not limits.completion else "generation cannot hold them"
    return (f"{file}: {len(over)} of {total} sample(s) {what} (the longest, record {worst.record} id {worst.id}: "
            f"{worst.total} {'tokens' if not limits.completion else 'prompt tokens'}, {worst.image} of them image "
            f"tokens from {worst.images} image(s)); {cut}: {raise_it}lower {lower}, or pass --drop-overlong to leave "
            "them out")


def images_problem(over: list[SampleTokens], total: int, limits: Limits, file: Path) -> str:
    most = max(s.images for s in over)
    first = over[0]
    return (f"{file}: {len(over)} of {total} sample(s) hold more images than {limits.images_name} {limits.images} "
            f"(record {first.record} id {first.id}: {first.images}); raise --{limits.images_name.replace('_', '-')} to {most} (a vLLM "
            f"server then needs --limit-mm-per-prompt '{{\"image\": {most}}}'), or pass --drop-overlong to leave "
            "them out")


def apply_limits(samples: list[SampleTokens], limits: Limits, file: Path, drop: bool) -> list[int]:
    """The positions of the samples that fit ``limits``. A sample over them is refused in one line, or with
    ``drop`` left out and counted on standard error; a run left with none is refused."""
    too_long, too_many = over_tokens(samples, limits), over_images(samples, limits)
    if not drop and too_many:
        raise MirgError(images_problem(too_many, len(samples), limits, file))
    if not drop and too_long:
        raise MirgError(tokens_problem(too_long, len(samples), limits, file))
    left_out = {s.record for s in too_long + too_many}
    if left_out == {s.record for s in samples}:
        problem = (tokens_problem(too_long, len(samples), limits, file) if too_long
                   else images_problem(too_many, len(samples), limits, file))
        raise MirgError(f"every sample is over the run's limits, nothing would be left to train on: {problem}")
    if left_out:
        from mirg.train.data import warn

        warn(f"{file}: left out {len(left_out)} of {len(samples)} sample(s) over the run's limits "
             f"({json.dumps(limits.describe())[1:-1]}; --drop-overlong)")
    return [i for i, s in enumerate(samples) if s.record not in left_out]


# -- reporting -------------------------------------------------------------------------------------------


def spread(values: Sequence[int]) -> dict[str, float]:
    """``min``, ``median`` and ``max`` of ``values``.

    >>> spread([3, 1, 10, 4])
    {'min': 1, 'median': 3.5, 'max': 10}
    """
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def budget_report(samples: Sequence[SampleTokens], limits: Limits, stage: str, dropped: int = 0) -> dict[str, Any]:
    """The token budget a dry run prints: the distribution over samples, per task, and how many are over the
    limits."""
    tasks: dict[str, list[int]] = {}
    for s in samples:
        tasks.setdefault(s.task, []).append(s.total)
    counted = ("chat-templated prompt and completion" if stage == "sft" else
               "chat-templated prompt (each also needs max_completion_length)")
    return {
        "counted": f"{counted}, images at the run's pixel limits",
        "samples": len(samples),
        "tokens": spread([s.total for s in samples]),
        "image_tokens": spread([s.image for s in samples]),
        "images_per_sample": spread([s.images for s in samples]),
        "per_task": {task: {"samples": len(v), **spread(v)} for task, v in sorted(tasks.items())},
        "limits": limits.describe(),
        "over_limits": len({s.record for s in over_tokens(samples, limits) + over_images(samples, limits)}),
        "dropped": dropped,
    }
