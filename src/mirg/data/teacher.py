"""Teacher mode: trajectories written by an OpenAI-compatible chat endpoint, each verified before use.

For every sample the endpoint gets the images (``data:image/png;base64`` parts), the annotations (image
notes, objects with boxes in the run's coordinate space, the reference, why the target image is the one,
the known answer) and the required format. Every reply is checked with
:func:`mirg.data.trajectories.check_trajectory`; a failed one is asked again, with the reason, up to
``max_attempts`` times, then rejected and counted by reason.

Robustness:

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
import base64
import email.utils
import hashlib
import io
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from mirg.answer import check_strict, render_answer, think_block
from mirg.errors import MirgError
from mirg.prompts import COORD_HINTS
from mirg.schema import Sample

from mirg.data.trajectories import (
    CACHE_FILE, README_FILE, REJECTED_FILE, RL_FILE, SFT_FILE, BuildReport, Dataset, Rejection, TrajectoryOptions,
    Warn, annotation_gaps, attributes_text, box_text, check_trajectory, image_paths, make_plan, note_text,
    readme_text, rl_row, sft_row, stderr_warn, warn_gaps, write_jsonl, write_space_record, write_text,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class TeacherConfig:
    """How to reach the endpoint and how hard to try.

    ``base_url`` is the API base (``.../v1``); requests go to ``{base_url}/chat/completions``.
    ``max_attempts`` counts replies asked per sample; ``http_retries`` counts retries of one request
    after 429/5xx/timeouts/connection errors, waiting ``backoff * 2**i`` seconds plus jitter (or what
    ``Retry-After`` says), at most ``max_backoff``.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    max_attempts: int = 3
    timeout: float = 120.0
    http_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    temperature: float = 0.2
    max_tokens: int = 1024

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise MirgError(f"--base-url {self.base_url!r}: must start with http:// or https://")
        if not self.model:
            raise MirgError("--model must name the model the endpoint serves")
        checks = [
            (self.concurrency >= 1, "--concurrency must be at least 1"),
            (self.max_attempts >= 1, "--max-attempts must be at least 1"),
            (self.timeout > 0, "--timeout must be positive"),
            (self.http_retries >= 0, "--http-retries must be 0 or more"),
            (0 <= self.backoff <= self.max_backoff, f"--backoff must be between 0 and {self.max_backoff:g} seconds"),
            (self.temperature >= 0, "--temperature must be 0 or more"),
            (self.max_tokens >= 1, "--max-tokens must be at least 1"),
        ]
        for ok, reason in checks:
            if not ok:
                raise MirgError(reason)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def payload(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}


# ----- the request ---------------------------------------------------------------------------------

SYSTEM = (
    "You write the step-by-step reasoning of a careful person solving a multi-image grounding question, "
    "as training data. You are given the images, their annotations and the known answer. Write the "
    "reasoning as if you found the answer by looking at the images: never mention annotations, hints or "
    "a given answer."
)


def image_data_url(path: Path) -> str:
    """The image file as a ``data:image/png;base64,...`` URL (re-encoded as PNG when it is not one)."""
    try:
        data = path.read_bytes()
        if not data.startswith(PNG_MAGIC):
            from PIL import Image

            with Image.open(io.BytesIO(data)) as img:
                buffer = io.BytesIO()
                img.convert("RGB").save(buffer, format="PNG")
                data = buffer.getvalue()
    except OSError as exc:
        raise MirgError(f"{path}: cannot read the image ({exc})") from None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


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


class TeacherStop(Exception):
    """The endpoint can't be used (down, or refusing with a 4xx): stop asking, keep what was done."""


class Abandoned(Exception):
    """A request given up because the run is stopping."""


@dataclass
class Reply:
    content: str | None
    error: str | None = None


def read_reply(response: Any) -> Reply:
    """The assistant text of a chat-completions response body, or why there is none."""
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Reply(None, "the reply is not a chat completion (no choices[0].message.content)")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        return Reply(None, "the reply's message content is not text")
    return Reply(content)


def retry_after(response: Any) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(cfg: TeacherConfig, retry: int, asked: float | None) -> float:
    """Seconds before retry number ``retry`` (0-based): ``Retry-After`` if given, else exponential + jitter."""
    if asked is not None:
        return min(asked, cfg.max_backoff)
    return min(cfg.backoff * 2**retry, cfg.max_backoff) + random.uniform(0, cfg.backoff)


def _snippet(response: Any) -> str:
    text = " ".join(response.text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


@dataclass
class Session:
    """What the workers of one run share: settings, the client, the cache and the stop flag."""

    cfg: TeacherConfig
    opts: TrajectoryOptions
    root: Path
    cache: ReplyCache
    client: Any
    headers: dict[str, str]
    redact: Callable[[str], str]
    calls: int = 0
    stop_reason: str | None = None


async def post_chat(session: Session, payload: dict[str, Any]) -> Reply:
    """One chat-completions request, retried on 429/5xx/timeouts/connection errors."""
    import httpx2

    cfg, problem = session.cfg, ""
    for retry in range(cfg.http_retries + 1):
        if session.stop_reason is not None:
            raise Abandoned
        asked = None
        try:
            response = await session.client.post(cfg.url, json=payload, headers=session.headers, timeout=cfg.timeout)
        except httpx2.TimeoutException:
            problem = f"timed out after {cfg.timeout:g} s"
        except httpx2.HTTPError as exc:
            problem = f"cannot reach it ({type(exc).__name__}: {session.redact(str(exc))})"
        else:
            if response.status_code == 200:
                return read_reply(response)
            if response.status_code != 429 and response.status_code < 500:
                said = session.redact(_snippet(response))
                raise TeacherStop(f"the endpoint answered HTTP {response.status_code}: {said}")
            problem, asked = f"HTTP {response.status_code}", retry_after(response)
        if retry < cfg.http_retries:
            await asyncio.sleep(backoff_delay(cfg, retry, asked))
    raise TeacherStop(f"no reply from {cfg.url} after {cfg.http_retries + 1} tries (last: {problem})")


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
    if session.stop_reason is not None:
        return None
    try:
        reply = await post_chat(session, payload)
    except Abandoned:
        return None
    except TeacherStop as exc:
        session.stop_reason = session.stop_reason or str(exc)
        return None
    session.calls += 1
    content = session.redact(reply.content) if reply.content is not None else None
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
    queue: asyncio.Queue[Sample] = asyncio.Queue()
    for sample in samples:
        queue.put_nowait(sample)

    async def worker() -> None:
        while not queue.empty():
            record(await teach_sample(session, queue.get_nowait()))

    workers = [asyncio.create_task(worker()) for _ in range(min(session.cfg.concurrency, len(samples)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


#: Keys shorter than this are placeholders (vLLM's "EMPTY"), not secrets; blanking them would garble replies.
MIN_SECRET_LEN = 12


def redactor(key: str | None) -> Callable[[str], str]:
    """A function that blanks the API key out of any text that could be shown or written.

    >>> redactor("sk-0123456789abcdef")("echo sk-0123456789abcdef"), redactor("EMPTY")("EMPTY <think>")
    ('echo ***', 'EMPTY <think>')
    """
    if not key or len(key) < MIN_SECRET_LEN:
        return lambda text: text
    return lambda text: text.replace(key, "***")


async def _run(dataset: Dataset, out: Path, opts: TrajectoryOptions, cfg: TeacherConfig,
               cache: ReplyCache, outputs: Outputs, key: str | None) -> Session:
    import httpx2

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx2.Limits(max_connections=cfg.concurrency)
    async with httpx2.AsyncClient(timeout=cfg.timeout, limits=limits) as client:
        session = Session(cfg, opts, dataset.root, cache, client, headers, redactor(key))
        await teach_all(session, dataset.samples, outputs.record)
    return session


def run_teacher(
    dataset: Dataset, out: Path, opts: TrajectoryOptions, cfg: TeacherConfig, warn: Warn = stderr_warn
) -> tuple[BuildReport, str | None]:
    """Build trajectories with the teacher; returns the report and, if the run had to stop, why.

    Outputs and README.md are written even when the run stops or is interrupted.
    """
    key = os.environ.get(cfg.api_key_env) or None
    if key is None:
        warn(f"${cfg.api_key_env} is not set: requests are sent without an API key")
    report = BuildReport("teacher", opts, dataset.manifest, dataset.samples, gaps=annotation_gaps(dataset.samples))
    report.notes.append(f"teacher: model `{cfg.model}` at {cfg.base_url}, up to {cfg.max_attempts} replies per sample")
    warn_gaps(report.gaps, len(dataset.samples), warn)
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
        session = asyncio.run(_run(dataset, out, opts, cfg, cache, outputs, key))
    finally:
        cache.close()
        calls = session.calls if session else "?"
        report.notes.append(f"{calls} new request(s) answered in the last run; {len(cache.entries)} replies cached")
        if session is not None and session.stop_reason is not None:
            report.notes.append(f"the last run stopped early: {session.stop_reason}")
        outputs.finish()
    return report, _stop_message(report, session)


def _stop_message(report: BuildReport, session: Session | None) -> str | None:
    if session is None or session.stop_reason is None:
        return None
    left = sum(report.unanswered.values())
    return f"stopped: {session.stop_reason}; {left} sample(s) not done, rerun the same command to resume"
