"""One client for OpenAI-compatible chat-completions endpoints (vLLM, SGLang, TGI, API models).

Teacher mode (:mod:`mirg.data.teacher`) and the served-model evaluation (:mod:`mirg.eval.served`) both
talk to endpoints through this module, so retries, timeouts, back-off, key handling and image encoding
behave the same everywhere:

- :class:`ChatConfig`: where the endpoint is, which model, how many requests in flight, how hard to try;
- :func:`open_chat`: an HTTP client for one run, with the API key as ``Authorization: Bearer``;
- :func:`post_chat`: one request; 429, 5xx, timeouts and connection errors are retried with exponential
  back-off plus jitter (``Retry-After`` honoured); what can't be fixed by asking again raises
  :class:`EndpointError`, which says whether the one request or the whole endpoint is at fault;
- :func:`run_bounded`: a pool of workers, at most ``concurrency`` items at once;
- :func:`redactor`: blanks the API key out of anything that could be shown or written;
- :func:`image_data_url`: an image file as a ``data:`` URL, encoded once per call.

The API key is read from the environment variable the user names and is never printed, logged,
cached or written.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import os
import random
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

from mirg.errors import MirgError, first_line

Item = TypeVar("Item")

#: Statuses that mean "this request is refused" (malformed, too long, too many images), not "stop".
REQUEST_REFUSED = frozenset({400, 413, 422})

#: Keys shorter than this are placeholders (vLLM's "EMPTY"), not secrets; blanking them would garble replies.
MIN_SECRET_LEN = 12


@dataclass(frozen=True)
class ChatConfig:
    """How to reach the endpoint and how hard to try.

    ``base_url`` is the API base (``.../v1``); requests go to ``{base_url}/chat/completions``.
    ``http_retries`` counts retries of one request after 429/5xx/timeouts/connection errors, waiting
    ``backoff * 2**i`` seconds plus jitter (or what ``Retry-After`` says), at most ``max_backoff``.
    ``timeout`` bounds each request, in seconds.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    timeout: float = 120.0
    http_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    temperature: float = 0.2
    max_tokens: int = 1024

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise MirgError(f"--base-url {self.base_url!r}: must start with http:// or https://")
        import httpx2

        try:
            httpx2.URL(self.base_url)
        except httpx2.InvalidURL as exc:
            raise MirgError(f"--base-url {self.base_url!r}: {first_line(exc)}") from None
        if not self.model:
            raise MirgError("--model must name the model the endpoint serves")
        for ok, reason in self.checks():
            if not ok:
                raise MirgError(reason)

    def checks(self) -> list[tuple[bool, str]]:
        """``(condition, reason)`` pairs every setting must meet; a subclass adds its own."""
        return [
            (self.concurrency >= 1, "--concurrency must be at least 1"),
            (self.timeout > 0, "--timeout must be positive"),
            (self.http_retries >= 0, "--http-retries must be 0 or more"),
            (0 <= self.backoff <= self.max_backoff, f"--backoff must be between 0 and {self.max_backoff:g} seconds"),
            (self.temperature >= 0, "--temperature must be 0 or more"),
            (self.max_tokens >= 1, "--max-tokens must be at least 1"),
        ]

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def payload(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}


# ----- the key -------------------------------------------------------------------------------------


def read_api_key(cfg: ChatConfig, warn: Callable[[str], None]) -> str | None:
    """The key from ``$api_key_env`` (``None``, with a warning, when it is not set: a local server needs none)."""
    key = os.environ.get(cfg.api_key_env) or None
    if key is None:
        warn(f"${cfg.api_key_env} is not set: requests are sent without an API key")
    return key


def redactor(key: str | None) -> Callable[[str], str]:
    """A function that blanks the API key out of any text that could be shown or written.

    >>> redactor("sk-0123456789abcdef")("echo sk-0123456789abcdef"), redactor("EMPTY")("EMPTY <think>")
    ('echo ***', 'EMPTY <think>')
    """
    if not key or len(key) < MIN_SECRET_LEN:
        return lambda text: text
    return lambda text: text.replace(key, "***")


# ----- images --------------------------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MIME_BY_MAGIC = ((PNG_MAGIC, "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


def image_format(data: bytes) -> str | None:
    """``png``, ``jpeg``, ``webp`` or ``gif`` read from the file's first bytes; ``None`` for anything else.

    >>> image_format(PNG_MAGIC + b"..."), image_format(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 "), image_format(b"BM")
    ('png', 'webp', None)
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((fmt for magic, fmt in _MIME_BY_MAGIC if data.startswith(magic)), None)


def image_data_url(path: Path, keep: Sequence[str] = ("png",)) -> str:
    """The image file as a ``data:image/...;base64`` URL.

    Files in one of the ``keep`` formats are sent byte for byte; any other is re-encoded as PNG (its
    pixels unchanged). Teacher mode keeps PNG only, so its cached requests stay the same; evaluation
    also keeps JPEG and WebP, so the model sees exactly the benchmark's files.
    """
    try:
        data = path.read_bytes()
        fmt = image_format(data)
        if fmt not in keep:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as img:
                buffer = io.BytesIO()
                img.convert("RGB").save(buffer, format="PNG")
                data, fmt = buffer.getvalue(), "png"
    except OSError as exc:
        raise MirgError(f"{path}: cannot read the image ({exc})") from None
    return f"data:image/{fmt};base64," + base64.b64encode(data).decode("ascii")


# ----- one request ---------------------------------------------------------------------------------


class EndpointError(Exception):
    """A request that got no usable reply.

    ``this_request`` is True when the failure belongs to this one request (it kept timing out or failing
    with 429/5xx, or was refused as malformed or too long): other requests may still succeed. False when
    the endpoint as a whole can't be used (unreachable, or refusing with 401, 403, 404, ...).
    """

    def __init__(self, message: str, this_request: bool = False):
        super().__init__(message)
        self.this_request = this_request


class Abandoned(Exception):
    """A request given up because the run is stopping."""


@dataclass
class Reply:
    content: str | None
    error: str | None = None


@dataclass
class ChatClient:
    """What the workers of one run share: the settings, the HTTP client, the key's redactor and the stop flag.

    ``stop_reason`` is set by whoever decides the run must stop; requests not yet sent are then abandoned.
    """

    cfg: ChatConfig
    client: Any
    headers: dict[str, str]
    redact: Callable[[str], str]
    stop_reason: str | None = None
    calls: int = 0


@asynccontextmanager
async def open_chat(cfg: ChatConfig, key: str | None) -> AsyncIterator[ChatClient]:
    """An HTTP client for one run: ``concurrency`` connections, the key as a bearer token when there is one."""
    import httpx2

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx2.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    async with httpx2.AsyncClient(timeout=cfg.timeout, limits=limits) as client:
        yield ChatClient(cfg, client, headers, redactor(key))


def read_reply(response: Any) -> Reply:
    """The assistant text of a chat-completions response body, or why there is none."""
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Reply(None, "the reply is not a chat completion (no choices[0].message.content)")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if not isinstance(content, str):
        return Reply(None, "the reply's message content is not text")
    # JSON may escape a lone surrogate ("\ud800"), which no file can hold as UTF-8: replaced, as unreadable bytes are.
    return Reply(content.encode("utf-8", "replace").decode("utf-8"))


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


def backoff_delay(cfg: ChatConfig, retry: int, asked: float | None) -> float:
    """Seconds before retry number ``retry`` (0-based): ``Retry-After`` if given, else exponential + jitter."""
    if asked is not None:
        return min(asked, cfg.max_backoff)
    return min(cfg.backoff * 2**retry, cfg.max_backoff) + random.uniform(0, cfg.backoff)


def _snippet(response: Any) -> str:
    text = " ".join(response.text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


async def post_chat(chat: ChatClient, payload: dict[str, Any]) -> Reply:
    """One chat-completions request, retried on 429/5xx/timeouts/connection errors.

    Raises :class:`EndpointError` when no reply comes (see its ``this_request``) and :class:`Abandoned`
    when the run stops meanwhile.
    """
    import httpx2

    cfg, problem, this_request = chat.cfg, "", False
    for retry in range(cfg.http_retries + 1):
        if chat.stop_reason is not None:
            raise Abandoned
        asked = None
        try:
            response = await chat.client.post(cfg.url, json=payload, headers=chat.headers, timeout=cfg.timeout)
        except (httpx2.ReadTimeout, httpx2.WriteTimeout):
            problem, this_request = f"timed out after {cfg.timeout:g} s", True
        except httpx2.HTTPError as exc:
            problem, this_request = f"cannot reach it ({type(exc).__name__}: {chat.redact(str(exc))})", False
        else:
            if response.status_code == 200:
                return read_reply(response)
            if response.status_code != 429 and response.status_code < 500:
                said = chat.redact(_snippet(response))
                refused = response.status_code in REQUEST_REFUSED
                raise EndpointError(f"the endpoint answered HTTP {response.status_code}: {said}", refused)
            problem, this_request, asked = f"HTTP {response.status_code}", True, retry_after(response)
        if retry < cfg.http_retries:
            await asyncio.sleep(backoff_delay(cfg, retry, asked))
    raise EndpointError(f"no reply from {cfg.url} after {cfg.http_retries + 1} tries (last: {problem})", this_request)


# ----- many requests -------------------------------------------------------------------------------


async def run_bounded(items: Sequence[Item], concurrency: int, work: Callable[[Item], Awaitable[None]]) -> None:
    """``await work(item)`` for every item, at most ``concurrency`` at once, in order of ``items``.

    An exception in one worker cancels the others and is raised here.
    """
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await work(queue.get_nowait())

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
