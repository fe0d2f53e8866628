"""Teacher mode: trajectories written by an OpenAI-compatible chat endpoint, each verified before use.

For every sample the endpoint gets the images (``data:image/png;base64`` parts), the annotations (image
notes, objects with boxes in the run's coordinate space, the reference, why the target image is the one,
the known answer) and the required format. Every reply is checked with
:func:`mirg.data.trajectories.check_trajectory`; a failed one is asked again, with the reason, up to
``max_attempts`` times, then rejected and counted by reason.

Robustness (the endpoint client is :mod:`mirg.chat_client`, shared with the served-model evaluation):

- at most ``concurrency`` requests in flight; 429, 5xx, timeouts and connection errors are retried with
  exponential backoff plus jitter (``Retry-After`` honoured); any other 4xx stops the run at once;
- every reply is appended to ``teacher_cache.jsonl`` in the output folder as it arrives, keyed by a
  hash of the model and the request payload, so a rerun never repeats a call that was answered;
- accepted rows are appended to ``sft.jsonl`` as they are verified; at the end the files are rewritten
  in manifest order. A run that is stopped keeps everything it verified.

The API key is read from an environment variable, sent as ``Authorization: Bearer``, and never printed,
logged, cached or written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from mirg.answer import check_strict, render_answer, think_block
from mirg.chat_client import (
    Abandoned, ChatClient, ChatConfig, EndpointError, image_data_url, open_chat, post_chat, read_api_key, run_bounded,
)
from mirg.prompts import COORD_HINTS
from mirg.schema import Sample

from mirg.data.trajectories import (
    BuildReport, Dataset, Rejection, TrajectoryOptions, Warn, annotation_gaps, attributes_text, box_text,
    check_trajectory, image_paths, make_plan, note_text, readme_text, rl_row, sft_row, stderr_warn, warn_gaps,
    warn_question_boxes,
    write_jsonl, write_space_record, write_text,
)
from mirg.formats import CACHE_FILE, README_FILE, REJECTED_FILE, RL_FILE, SFT_FILE


@dataclass(frozen=True)
class TeacherConfig(ChatConfig):
    """The endpoint settings of :class:`mirg.chat_client.ChatConfig`, plus ``max_attempts``: replies asked
    per sample before it is rejected."""

    max_attempts: int = 3

    def checks(self) -> list[tuple[bool, str]]:
        base = super().checks()
        return [base[0], (self.max_attempts >= 1, "--max-attempts must be at least 1"), *base[1:]]


# ----- the request ---------------------------------------------------------------------------------

SYSTEM = (
    "You write the step-by-step reasoning of a careful person solving a multi-image grounding question, "
    "as training data. You are given the images, their annotations and the known answer. Write the "
    "reasoning as if you found the answer by looking at the images: never mention annotations, hints or "
    "a given answer."
)


def _image_line(sample: Sample, k: int, opts: TrajectoryOptions) -> str:
    line = f"Image {k}:"
    if sample.image_notes is not None:
        line += f" {note_text(sample.image_notes[k - 1])}."
    if sample.objects is not None:
        size = sample.image_sizes[k - 1]
        listed = "; ".join(
            f"{o.label} {box_text(o.bbox, size, opts.coords)}{attributes_text(o)}" for o in sample.objects[k - 1]
        )
        line += f" Objects: {listed or 'none'}."
    return line


def annotation_text(sample: Sample, opts: TrajectoryOptions) -> str:
    """What the teacher is told: the question, annotations, the reason and the known answer."""
    plan = make_plan(sample)
    k = sample.target.image
    lines = [f"Question: {sample.question.strip()}", f"Boxes are [{COORD_HINTS[opts.coords.name]}]."]
    if sample.image_notes is not None or sample.objects is not None:
        lines += [_image_line(sample, i, opts) for i in range(1, sample.num_images + 1)]
    if plan.reference is not None:
        ref = plan.reference
        lines.append(f"Reference object: the {ref.obj.label} in image {ref.image}{attributes_text(ref.obj)}.")
    if plan.target is not None:
        lines.append(f"Target object: the {plan.target.label}{attributes_text(plan.target)}.")
    lines.append(f"Why the target image is the one: {plan.rule}")
    lines.append(f"Known answer: image {k}, box {box_text(sample.target.bbox, sample.target_size(), opts.coords)}.")
    return "\n".join(lines)


def instructions(opts: TrajectoryOptions) -> str:
    """The steps and the exact output format asked for."""
    listing = (
        "list every object of every image with its box" if opts.detail == "full"
        else "name only the objects that matter"
    )
    return (
        "Write the reasoning inside <think></think> in four steps: (a) sum up each image in one sentence "
        f"and {listing}; (b) name the reference object and its attributes; (c) decide which image holds the "
        "target, say why, and name it as \"image k\"; (d) locate the object in that image with its box. "
        'Then write exactly <answer>{"image": k, "bbox_2d": [x1, y1, x2, y2]}</answer> with the known '
        "answer. Reply with nothing else."
    )


def request_messages(sample: Sample, opts: TrajectoryOptions, root: Path) -> list[dict[str, Any]]:
    """The chat messages for the first attempt at one sample."""
    parts: list[dict[str, Any]] = []
    for k, rel in enumerate(sample.images, start=1):
        parts.append({"type": "text", "text": f"Image {k}:"})
        parts.append({"type": "image_url", "image_url": {"url": image_data_url(root / rel)}})
    parts.append({"type": "text", "text": annotation_text(sample, opts) + "\n\n" + instructions(opts)})
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": parts}]


def feedback(previous: str | None, rejection: Rejection, attempt: int) -> list[dict[str, Any]]:
    """Messages appended for attempt number ``attempt``: the rejected reply and why it was rejected.

    The attempt number keeps every attempt's payload distinct, so a teacher that repeats itself is
    still asked (and cached) once per attempt.
    """
    messages: list[dict[str, Any]] = []
    if previous is not None:
        messages.append({"role": "assistant", "content": previous})
    messages.append({"role": "user", "content": (
        f"That reply was rejected ({rejection.kind}: {rejection.detail}). Attempt {attempt}: write it again, "
        'the reasoning in <think></think>, then exactly <answer>{"image": k, "bbox_2d": [x1, y1, x2, y2]}</answer>, '
        "nothing else."
    )})
    return messages


def cache_key(model: str, payload: dict[str, Any]) -> str:
    """A hash of the model and the request payload: the same request always maps to the same reply."""
    blob = json.dumps({"model": model, "payload": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ----- the cache -----------------------------------------------------------------------------------


class ReplyCache:
    """Append-only JSONL of raw replies, one line per reply, flushed as it arrives.

    A line cut short by a killed run is skipped (and counted) when the cache is read back.
    """

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.damaged = 0
        self._handle: TextIO | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (ValueError, KeyError, TypeError):
                    self.damaged += 1

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> dict[str, Any]:
        if self._handle is None:
            self._handle = self._open_for_append()
        entry = {"key": key, **entry}
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.entries[key] = entry
        return entry

    def _open_for_append(self) -> TextIO:
        handle = self.path.open("a", encoding="utf-8")
        if self.path.stat().st_size and not self._ends_with_newline():
            handle.write("\n")  # finish a line cut short by a killed run so the next one stands alone
        return handle

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as raw:
            raw.seek(-1, os.SEEK_END)
            return raw.read(1) == b"\n"

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# ----- HTTP ----------------------------------------------------------------------------------------


#: The endpoint can't be used (down, or refusing with a 4xx): teacher mode stops asking and keeps what was done.
TeacherStop = EndpointError


@dataclass
class Session:
    """What the workers of one run share: the endpoint client (with the stop flag), the options and the cache."""

    chat: ChatClient
    opts: TrajectoryOptions
    root: Path
    cache: ReplyCache

    @property
    def cfg(self) -> TeacherConfig:
        return self.chat.cfg  # type: ignore[return-value]


# ----- one sample ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one sample ended: accepted (``text``), rejected (``rejection``), or unanswered (neither)."""

    sample: Sample
    text: str | None = None
    rejection: Rejection | None = None
    reply: str | None = None


def judge(sample: Sample, entry: dict[str, Any], opts: TrajectoryOptions) -> Rejection | None:
    """Verify one cached reply (``None`` = keep it)."""
    content = entry.get("content")
    if not isinstance(content, str):
        return Rejection("unreadable reply", str(entry.get("error") or "no text"))
    return check_trajectory(sample, content, opts.coords)


def accepted_text(sample: Sample, content: str) -> str:
    """A verified reply as the SFT completion: its reasoning and its answer, rendered canonically."""
    answer = check_strict(content, sample.num_images)
    return render_answer(answer.image, answer.bbox, think=think_block(content.strip()).strip())


async def reply_for(session: Session, sample: Sample, attempt: int, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The cached reply to ``payload``, else a fresh one (cached at once); ``None`` when the run stops."""
    key = cache_key(session.cfg.model, payload)
    entry = session.cache.get(key)
    if entry is not None:
        return entry
    chat = session.chat
    if chat.stop_reason is not None:
        return None
    try:
        reply = await post_chat(chat, payload)
    except Abandoned:
        return None
    except TeacherStop as exc:
        chat.stop_reason = chat.stop_reason or str(exc)
        return None
    chat.calls += 1
    content = chat.redact(reply.content) if reply.content is not None else None
    return session.cache.put(key, {"id": sample.id, "attempt": attempt, "content": content, "error": reply.error})


async def teach_sample(session: Session, sample: Sample) -> Outcome:
    """Ask for a trajectory until one verifies or ``max_attempts`` replies were rejected."""
    first = request_messages(sample, session.opts, session.root)
    messages, rejection, content = first, None, None
    for attempt in range(1, session.cfg.max_attempts + 1):
        entry = await reply_for(session, sample, attempt, session.cfg.payload(messages))
        if entry is None:
            return Outcome(sample)
        content = entry.get("content")
        rejection = judge(sample, entry, session.opts)
        if rejection is None:
            return Outcome(sample, text=accepted_text(sample, content))
        messages = first + feedback(content, rejection, attempt + 1)
    return Outcome(sample, rejection=rejection, reply=content)


# ----- the run -------------------------------------------------------------------------------------


class Outputs:
    """``sft.jsonl`` and ``rejected.jsonl`` appended line by line as samples finish (flushed each time)."""

    def __init__(self, dataset: Dataset, out: Path, report: BuildReport):
        self.dataset, self.out, self.report = dataset, out, report
        self.rows: dict[str, dict[str, Any]] = {}
        self.rejected: dict[str, dict[str, Any]] = {}
        self._sft = (out / SFT_FILE).open("w", encoding="utf-8")
        self._rej = (out / REJECTED_FILE).open("w", encoding="utf-8")

    def record(self, outcome: Outcome) -> None:
        sample, task = outcome.sample, outcome.sample.task
        if outcome.text is not None:
            paths = image_paths(sample, self.dataset.root, self.out)
            row = sft_row(sample, paths, self.report.opts.coords.name, outcome.text)
            self.rows[sample.id] = row
            _append(self._sft, row)
            self.report.accepted[task] += 1
        elif outcome.rejection is not None:
            rej = outcome.rejection
            row = {"id": sample.id, "task": task, "reason": rej.kind, "detail": rej.detail, "last_reply": outcome.reply}
            self.rejected[sample.id] = row
            _append(self._rej, row)
            self.report.reject(task, rej.kind)
        else:
            self.report.unanswered[task] += 1

    def finish(self) -> None:
        """Close the running files and rewrite them in manifest order; write README.md."""
        self._sft.close()
        self._rej.close()
        order = [s.id for s in self.dataset.samples]
        write_jsonl(self.out / SFT_FILE, [self.rows[i] for i in order if i in self.rows])
        write_jsonl(self.out / REJECTED_FILE, [self.rejected[i] for i in order if i in self.rejected])
        write_text(self.out / README_FILE, readme_text(self.report))


def _append(handle: TextIO, row: dict[str, Any]) -> None:
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()


async def teach_all(session: Session, samples: list[Sample], record: Callable[[Outcome], None]) -> None:
    """Run ``concurrency`` workers over the samples; each records its outcome as soon as it has one."""

    async def teach(sample: Sample) -> None:
        record(await teach_sample(session, sample))

    await run_bounded(samples, session.cfg.concurrency, teach)


async def _run(dataset: Dataset, opts: TrajectoryOptions, cfg: TeacherConfig,
               cache: ReplyCache, outputs: Outputs, key: str | None) -> Session:
    async with open_chat(cfg, key) as chat:
        session = Session(chat, opts, dataset.root, cache)
        await teach_all(session, dataset.samples, outputs.record)
    return session


def run_teacher(
    dataset: Dataset, out: Path, opts: TrajectoryOptions, cfg: TeacherConfig, warn: Warn = stderr_warn
) -> tuple[BuildReport, str | None]:
    """Build trajectories with the teacher; returns the report and, if the run had to stop, why.

    Outputs and README.md are written even when the run stops or is interrupted.
    """
    key = read_api_key(cfg, warn)
    report = BuildReport("teacher", opts, dataset.manifest, dataset.samples, gaps=annotation_gaps(dataset.samples))
    report.notes.append(f"teacher: model `{cfg.model}` at {cfg.base_url}, up to {cfg.max_attempts} replies per sample")
    warn_gaps(report.gaps, len(dataset.samples), warn)
    warn_question_boxes(report, warn)
    out.mkdir(parents=True, exist_ok=True)
    rl = [rl_row(s, image_paths(s, dataset.root, out), opts.coords.name) for s in dataset.samples]
    write_jsonl(out / RL_FILE, rl)
    write_space_record(out, opts)
    cache = ReplyCache(out / CACHE_FILE)
    if cache.damaged:
        warn(f"{cache.damaged} damaged line(s) in {CACHE_FILE} skipped (a run was cut off while writing)")
    outputs = Outputs(dataset, out, report)
    session = None
    try:
        session = asyncio.run(_run(dataset, opts, cfg, cache, outputs, key))
    finally:
        cache.close()
        calls = session.chat.calls if session else "?"
        report.notes.append(f"{calls} new request(s) answered in the last run; {len(cache.entries)} replies cached")
        if session is not None and session.chat.stop_reason is not None:
            report.notes.append(f"the last run stopped early: {session.chat.stop_reason}")
        outputs.finish()
    return report, _stop_message(report, session)


def _stop_message(report: BuildReport, session: Session | None) -> str | None:
    if session is None or session.chat.stop_reason is None:
        return None
    left = sum(report.unanswered.values())
    return f"stopped: {session.chat.stop_reason}; {left} sample(s) not done, rerun the same command to resume"
