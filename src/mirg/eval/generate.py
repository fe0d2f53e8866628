"""Batched greedy generation for evaluation, written to ``predictions.jsonl`` as it goes.

An interrupted run resumes: ids already in the file are skipped, a line cut off by the interruption is
dropped and regenerated, so no sample is generated twice or lost. The model's adapter supplies the
processor, the prompt and the coordinate space; nothing here knows a family's quirks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from mirg.errors import MirgError
from mirg.eval.predictions import append_prediction
from mirg.schema import Sample


@dataclass
class GenerationSettings:
    batch_size: int = 8
    max_new_tokens: int = 384
    backend: str = "hf"
    dtype: str = "float32"
    device: str = "auto"

    def __post_init__(self) -> None:
        for flag, value in (("--batch-size", self.batch_size), ("--max-new-tokens", self.max_new_tokens)):
            if value < 1:
                raise MirgError(f"{flag} must be at least 1, got {value}")


def completed_ids(path: Path) -> set[str]:
    """Ids already generated in ``path``; a truncated last line (an interrupted write) is removed, and so is
    the record of a sample that got no answer (it carries an ``error``: a served model's request kept
    failing), so that a rerun asks for it again."""
    if not path.is_file():
        return set()
    done: set[str] = set()
    kept: list[bytes] = []
    for line in path.read_bytes().splitlines():
        try:  # line by line: a write cut short can end inside a character as well as inside the JSON
            record = json.loads(line.decode("utf-8"))
        except ValueError:
            continue  # only a write cut short by an interruption can leave this; it is regenerated
        if isinstance(record, dict) and record.get("error") is not None:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"] not in done:
            done.add(record["id"])
            kept.append(line)
    path.write_bytes(b"".join(line + b"\n" for line in kept))
    return done


def batches(items: Sequence[Sample], size: int) -> Iterator[list[Sample]]:
    """Fixed-size batches of samples with the same number of images (less padding, same prompt shape)."""
    ordered = sorted(items, key=lambda s: s.num_images)
    for start in range(0, len(ordered), size):
        yield list(ordered[start : start + size])


def load_images(sample: Sample, root: Path) -> list:
    """The sample's images as RGB PIL images, with a one-line error naming a missing or broken file."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for rel in sample.images:
        path = root / rel
        try:
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
        except FileNotFoundError:
            raise MirgError(f"{sample.id}: image {path} does not exist") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise MirgError(f"{sample.id}: image {path} is unreadable ({exc})") from None
    return images


class HFGenerator:
    """Greedy decoding with transformers: left padding, KV cache, one forward batch at a time."""

    def __init__(self, model_dir: Path, settings: GenerationSettings):
        import torch

        from mirg.models.registry import adapter_for

        self.adapter = adapter_for(model_dir)
        self.processor = self.adapter.load_processor(model_dir)
        self.processor.tokenizer.padding_side = "left"
        self.model = self.adapter.load_model(model_dir, settings.dtype, settings.device).eval()
        self.settings = settings
        self.torch = torch

    def prompt_text(self, sample: Sample) -> str:
        messages = self.adapter.user_message(sample.question, sample.num_images)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(self, samples: list[Sample], root: Path) -> list[str]:
        texts = [self.prompt_text(s) for s in samples]
        images = [load_images(s, root) for s in samples]
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt").to(self.model.device)
        pad_id = self.processor.tokenizer.pad_token_id
        with self.torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=self.settings.max_new_tokens, do_sample=False, use_cache=True,
                pad_token_id=pad_id,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


class VLLMGenerator:
    """Greedy decoding with vLLM (optional extra ``mirg[vllm]``, GPUs)."""

    def __init__(self, model_dir: Path, settings: GenerationSettings):
        try:
            import vllm
        except ImportError:
            raise MirgError("--backend vllm needs vLLM: pip install 'mirg[vllm]' (GPU machines)") from None
        from mirg.models.registry import adapter_for

        self.adapter = adapter_for(model_dir)
        self.llm = vllm.LLM(model=str(model_dir), limit_mm_per_prompt={"image": 8})
        self.params = vllm.SamplingParams(temperature=0.0, max_tokens=settings.max_new_tokens)

    def generate(self, samples: list[Sample], root: Path) -> list[str]:
        import base64
        import io

        conversations = []
        for sample in samples:
            message = self.adapter.user_message(sample.question, sample.num_images)[0]
            content, pictures = [], iter(load_images(sample, root))
            for part in message["content"]:
                if part["type"] == "image":
                    buffer = io.BytesIO()
                    next(pictures).save(buffer, format="PNG")
                    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
                    content.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    content.append(part)
            conversations.append([{"role": "user", "content": content}])
        outputs = self.llm.chat(conversations, self.params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


def make_generator(model_dir: Path, settings: GenerationSettings) -> Any:
    if settings.backend == "hf":
        return HFGenerator(model_dir, settings)
    if settings.backend == "vllm":
        return VLLMGenerator(model_dir, settings)
    raise MirgError(f"unknown backend {settings.backend!r}; use hf or vllm")


def generate_predictions(model_dir: Path, samples: Sequence[Sample], root: Path, out: Path,
                         settings: GenerationSettings, progress: bool = True) -> int:
    """Generate a response for every sample not yet in ``out``; returns how many were generated now."""
    from tqdm import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    done = completed_ids(out)
    todo = [s for s in samples if s.id not in done]
    if not todo:
        return 0
    generator = make_generator(model_dir, settings)
    bar = tqdm(total=len(todo), desc="generating", unit="sample", disable=not progress, dynamic_ncols=True)
    with out.open("a", encoding="utf-8") as handle:
        for batch in batches(todo, settings.batch_size):
            for sample, response in zip(batch, generator.generate(batch, root)):
                append_prediction(handle, sample.id, response)
            bar.update(len(batch))
    bar.close()
    return len(todo)
