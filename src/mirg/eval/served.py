"""Evaluate a served model: any OpenAI-compatible chat endpoint (vLLM, SGLang, TGI, an API model).

Each sample's images (``data:`` URLs, in order, each once) and its prompt go to ``{base_url}/chat/completions``
with ``concurrency`` requests in flight, through :mod:`mirg.chat_client` — the client teacher mode uses, with
its retries, timeouts and back-off. The payload of a sample is built once and reused by every retry.

What ends up in ``RUN/predictions.jsonl``, one line per sample as its answer arrives:

- an answer: ``{"id", "response"}``; a rerun never asks for it again;
- a reply that is not a chat completion (a gateway's HTML page): ``{"id", "response": "", "unreadable": why}``;
  the endpoint did answer, so it is kept, scored as unparsable and counted;
- no reply (the request kept failing with 429/5xx/timeouts, or was refused as malformed or too long):
  ``{"id", "response": "", "error": why}``; it scores as wrong and is counted, and a rerun asks for it again.

An endpoint that can't be used at all (unreachable, or refusing with 401/403/404) stops the run: what was
answered stays, and rerunning the same command resumes.

Boxes are read in ``--coords``, or in the space of ``--family``'s adapter with its pixel limits. With
neither, the run is refused: a served model's box space can't be guessed, and a wrong guess silently
scores a good model near zero (Qwen2.5-VL's resized-pixel boxes read as 0-1000).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from mirg.chat_client import (
    Abandoned, ChatClient, ChatConfig, EndpointError, image_data_url, open_chat, post_chat, read_api_key, redactor,
    run_bounded,
)
from mirg.errors import MirgError
from mirg.eval.generate import completed_ids
from mirg.eval.run import claim_run_folder, load_eval_data, score_and_report
from mirg.geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, CoordSpace
from mirg.eval.migbench import PROMPT_SUFFIXES, benchmark_prompt
from mirg.eval.predictions import append_prediction
from mirg.prompts import user_content, user_text
from mirg.schema import Sample, manifest_path

#: ``mirg``: mirg's own prompt (the in-process backend's); the others: MIG-Bench's wording (see ``PROMPT_SUFFIXES``).
PROMPTS = ("mirg", *PROMPT_SUFFIXES)
PREDICTIONS = "predictions.jsonl"
#: Image files sent byte for byte; any other format is re-encoded as PNG.
KEEP_FORMATS = ("png", "jpeg", "webp")


@dataclass(frozen=True)
class ServedSettings:
    """The endpoint (``chat``), the prompt style and the space the answers' boxes are read in."""

    chat: ChatConfig
    space: CoordSpace
    prompt: str = "mirg"

    def __post_init__(self) -> None:
        if self.prompt not in PROMPTS:
            raise MirgError(f"--prompt {self.prompt!r}: choose one of {', '.join(PROMPTS)}")

    def identity(self, data: Path, redact: Callable[[str], str]) -> dict[str, Any]:
        """What a run folder's predictions depend on (``run.json``); never the key."""
        identity = {"backend": "openai", "base_url": redact(self.chat.base_url), "model": self.chat.model,
                    "prompt": self.prompt, "coords": self.space.name, "data": str(data.resolve()),
                    "max_tokens": self.chat.max_tokens, "temperature": self.chat.temperature}
        if self.space.name == "resized":
            identity.update(min_pixels=self.space.min_pixels, max_pixels=self.space.max_pixels)
        return identity


def served_space(coords: str | None, family: str | None, min_pixels: int | None = None,
                 max_pixels: int | None = None) -> CoordSpace:
    """The space a served model's boxes are read in: ``coords``, else ``family``'s; pixel limits from
    ``min_pixels``/``max_pixels``, else the family's, else Qwen2.5-VL's defaults.

    >>> served_space(None, "qwen2_5_vl", max_pixels=401408)
    CoordSpace(name='resized', min_pixels=3136, max_pixels=401408)
    >>> served_space("norm1000", None).name
    'norm1000'
    """
    if coords is None and family is None:
        raise MirgError("--backend openai needs --coords SPACE or --family F: a served model's box space can't be "
                        "guessed (Qwen2.5-VL: resized; Qwen2-VL, Qwen3-VL: norm1000)")
    low, high = QWEN_MIN_PIXELS, QWEN_MAX_PIXELS
    if family is not None:
        from mirg.models.registry import adapter_for

        adapter = adapter_for(family)
        coords, low, high = coords or adapter.coords, adapter.min_pixels, adapter.max_pixels
    return CoordSpace(coords, low if min_pixels is None else min_pixels, high if max_pixels is None else max_pixels)


# ----- the request ---------------------------------------------------------------------------------


def prompt_text(sample: Sample, prompt: str, coords: str) -> str:
    """The text after the images: mirg's question and answer format, or MIG-Bench's own wording.

    MIG-Bench's wording appends to the question exactly as the benchmark file states it, which a converted
    manifest keeps as ``source_question`` (the manifest's ``question`` is trimmed).
    """
    if prompt == "mirg":
        return user_text(sample.question, coords)
    return benchmark_prompt(str(sample.extra.get("source_question") or sample.question), prompt)


def request_messages(sample: Sample, root: Path, prompt: str, coords: str) -> list[dict[str, Any]]:
    """One user message: mirg's prompt labels each image (``Image k:`` before it) as in training; MIG-Bench's
    evaluation sends the images, then the text."""
    urls = [image_data_url(root / rel, KEEP_FORMATS) for rel in sample.images]
    images = iter({"type": "image_url", "image_url": {"url": url}} for url in urls)
    if prompt == "mirg":
        content = [next(images) if part["type"] == "image" else part
                   for part in user_content(sample.question, sample.num_images, coords)]
    else:
        content = [*images, {"type": "text", "text": prompt_text(sample, prompt, coords)}]
    return [{"role": "user", "content": content}]


async def ask_one(chat: ChatClient, sample: Sample, root: Path, settings: ServedSettings) -> dict[str, Any] | None:
    """The predictions record of one sample (without its id), or ``None`` when the run is stopping."""
    payload = chat.cfg.payload(request_messages(sample, root, settings.prompt, settings.space.name))
    try:
        reply = await post_chat(chat, payload)
    except Abandoned:
        return None
    except EndpointError as exc:
        if not exc.this_request:
            chat.stop_reason = chat.stop_reason or str(exc)
            return None
        return {"response": "", "error": chat.redact(str(exc))}
    chat.calls += 1
    if reply.content is None:
        return {"response": "", "unreadable": reply.error}
    return {"response": chat.redact(reply.content)}


# ----- the run -------------------------------------------------------------------------------------


@dataclass
class AskRun:
    """What one invocation asked: samples sent, their outcomes, why it stopped (if it did) and how long it took."""

    asked: int = 0
    answered: int = 0
    unreadable: int = 0
    failed: int = 0
    stop_reason: str | None = None
    seconds: float = 0.0

    def count(self, record: dict[str, Any]) -> None:
        if "error" in record:
            self.failed += 1
        elif "unreadable" in record:
            self.unreadable += 1
        else:
            self.answered += 1

    @property
    def rate(self) -> float:
        """Samples finished per second of asking."""
        done = self.answered + self.unreadable + self.failed
        return done / self.seconds if self.seconds > 0 else 0.0


async def ask_all(samples: list[Sample], root: Path, settings: ServedSettings, key: str | None,
                  handle: TextIO, on_done: Callable[[], None]) -> AskRun:
    """Ask every sample, ``concurrency`` at a time, appending each record to ``handle`` as it arrives."""
    run = AskRun(asked=len(samples))
    async with open_chat(settings.chat, key) as chat:

        async def ask(sample: Sample) -> None:
            if chat.stop_reason is not None:
                return
            record = await ask_one(chat, sample, root, settings)
            if record is not None:
                append_prediction(handle, sample.id, **record)
                run.count(record)
                on_done()

        await run_bounded(samples, settings.chat.concurrency, ask)
        run.stop_reason = chat.stop_reason
    return run


def ask_served(samples: list[Sample], root: Path, path: Path, settings: ServedSettings, key: str | None,
               progress: bool = True) -> AskRun:
    """Ask for every sample not yet answered in ``path`` (``predictions.jsonl``); see the module's docstring."""
    from tqdm import tqdm

    done = completed_ids(path)
    todo = [s for s in samples if s.id not in done]
    if not todo:
        return AskRun()
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc="asking", unit="sample", disable=not progress, dynamic_ncols=True)
    with path.open("a", encoding="utf-8") as handle:
        try:
            run = asyncio.run(ask_all(todo, root, settings, key, handle, lambda: bar.update(1)))
        finally:
            bar.close()
    run.seconds = time.perf_counter() - start
    return run


def recorded_problems(path: Path, ids: set[str]) -> tuple[Counter, Counter]:
    """Reasons of the samples ``ids`` in ``path`` that got no answer (``error``) and of the unreadable replies
    (a folder may hold answers to samples this run does not score, e.g. before a smaller ``--max-samples``)."""
    failed: Counter = Counter()
    unreadable: Counter = Counter()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("id") not in ids:
                continue
            if record.get("error") is not None:
                failed[str(record["error"])] += 1
            elif record.get("unreadable") is not None:
                unreadable[str(record["unreadable"])] += 1
    return failed, unreadable


def describe_counts(counts: Counter, most: int = 3) -> str:
    """``2 x HTTP 500; 1 x timed out``: the most common reasons first.

    >>> describe_counts(Counter({"a": 1, "b": 2, "c": 1, "d": 1}), most=2)
    '2 x b; 1 x a; and 2 more'
    """
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = "; ".join(f"{n} x {reason}" for reason, n in top[:most])
    rest = sum(n for _, n in top[most:])
    return text + (f"; and {rest} more" if rest else "")


def served_notes(settings: ServedSettings, data: str | Path, n: int, failed: Counter, unreadable: Counter,
                 redact: Callable[[str], str]) -> list[str]:
    """The report's first lines: the endpoint and model, the prompt, the box space and what went wrong."""
    space = settings.space
    limits = f" at {space.min_pixels}-{space.max_pixels} pixels" if space.name == "resized" else ""
    notes = [f"served model `{settings.chat.model}` at {redact(settings.chat.base_url)}; prompt: {settings.prompt}; "
             f"boxes read as {space.name}{limits}; data: {data}; {n} samples"]
    if failed:
        notes.append(f"{sum(failed.values())} sample(s) got no answer and score as wrong ({describe_counts(failed)}); "
                     "rerunning the same command asks for them again")
    if unreadable:
        notes.append(f"{sum(unreadable.values())} reply(ies) were not chat completions and score as unparsable "
                     f"({describe_counts(unreadable)})")
    if settings.prompt != "mirg":
        notes.append("MIG-Bench's prompt asks for a box without an image number, so mirg's image-aware scores below "
                     "count such answers as unparsable; `mirg score --data BENCH.json --predictions "
                     "RUN/predictions.jsonl --compat migbench` gives the benchmark's own numbers")
    return notes


def evaluate_served(settings: ServedSettings, data: str | Path, out: str | Path, limit: int | None = None,
                    title: str | None = None, progress: bool = True,
                    warn: Callable[[str], None] | None = None) -> tuple[dict[str, Any], AskRun]:
    """Ask the endpoint for every sample of ``data`` into ``out/predictions.jsonl`` (resumable), then write
    metrics and the report exactly as for a model run in-process. Returns the metrics and what was asked."""
    from mirg.data.trajectories import stderr_warn

    samples, root = load_eval_data(data, limit)
    out = Path(out)
    key = read_api_key(settings.chat, warn or stderr_warn)
    redact = redactor(key)
    claim_run_folder(out, settings.identity(manifest_path(data), redact))
    run = ask_served(samples, root, out / PREDICTIONS, settings, key, progress)
    if run.stop_reason is not None:
        left = run.asked - run.answered - run.unreadable - run.failed
        raise MirgError(f"stopped: {run.stop_reason}; {left} sample(s) not asked, rerun the same command to resume")
    failed, unreadable = recorded_problems(out / PREDICTIONS, {sample.id for sample in samples})
    info = {"model": settings.chat.model, "endpoint": redact(settings.chat.base_url), "prompt": settings.prompt,
            "data": str(data), "failed_requests": sum(failed.values()), "unreadable_replies": sum(unreadable.values())}
    notes = served_notes(settings, data, len(samples), failed, unreadable, redact)
    metrics = score_and_report(samples, root, out, settings.space, info,
                               title or f"Evaluation of {settings.chat.model} (served)", notes)
    if sum(failed.values()) == len(samples):
        raise MirgError(f"no sample got an answer ({describe_counts(failed)}); rerun the same command to ask again")
    return metrics, run
