"""Teacher mode against a real chat-completions server on loopback with scripted answers.

The server answers per sample (the question carries the sample id) from a script: right, wrong image,
bad box, malformed, not a chat completion, slow, 429, 500, 401, or hang. It counts requests per payload,
so a test can tell exactly which calls were repeated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx2
import pytest

from mirg.cli import main
from mirg.chat_client import backoff_delay, retry_after
from mirg.data.teacher import CACHE_FILE, ReplyCache, TeacherConfig
from mirg.data.trajectories import check_trajectory
from mirg.errors import MirgError
from mirg.geometry import CoordSpace
from mirg.schema import read_manifest

from test_trajectories import completion_text, read_jsonl, write_dataset

KEY = "sk-test-5ecret-do-not-write"
ID_PATTERN = re.compile(r"\[(s\d{3})\]")


class Script:
    """What the server says to each sample, request by request, and what it has seen."""

    def __init__(self, manifest: Path, plans: dict[str, list[str]] | None = None, slow_s: float = 1.5):
        self.samples = {s.id: s for s in read_manifest(manifest)}
        self.plans = plans or {}
        self.slow_s = slow_s
        self.lock = threading.Lock()
        self.per_payload: Counter = Counter()
        self.per_sample: Counter = Counter()
        self.payload_sample: dict[str, str] = {}
        self.auth: set[str] = set()
        self.hang_after: int | None = None  # requests after this many hang until `release` is set
        self.release = threading.Event()
        self.total = 0

    def register(self, body: bytes, auth: str | None) -> tuple[str, str]:
        payload = json.loads(body)
        text = payload["messages"][1]["content"][-1]["text"]
        sid = ID_PATTERN.search(text).group(1)
        digest = hashlib.sha256(body).hexdigest()
        with self.lock:
            self.total += 1
            self.per_payload[digest] += 1
            self.payload_sample[digest] = sid
            n = self.per_sample[sid]
            self.per_sample[sid] += 1
            self.auth.add(auth or "")
            hang = self.hang_after is not None and self.total > self.hang_after
        plan = self.plans.get(sid, [])
        return sid, "hang" if hang else (plan[n] if n < len(plan) else "right")

    def reply_text(self, sid: str, behaviour: str) -> str:
        s = self.samples[sid]
        k, box = s.target.image, list(s.target.bbox)
        think = f"Image {k} holds it."
        if behaviour == "wrong_image":
            k = k % s.num_images + 1
        elif behaviour == "bad_box":
            box = [box[0], box[1], box[0] + (box[2] - box[0]) / 4, box[1] + (box[3] - box[1]) / 4]
        elif behaviour == "no_image_named":
            think = "It is there."
        elif behaviour == "malformed":
            return f"Sure! It is image {k}, around {box}."
        return f"<think>{think}</think><answer>{json.dumps({'image': k, 'bbox_2d': box})}</answer>"


def _handler(script: Script) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout) or was killed

        def do_POST(self) -> None:
            if self.path != "/v1/chat/completions":
                return self._send(404, b"{}")
            body = self.rfile.read(int(self.headers["Content-Length"]))
            sid, behaviour = script.register(body, self.headers.get("Authorization"))
            if behaviour == "hang":
                script.release.wait(30)
                return self._send(503, b"{}")
            if behaviour in ("429", "500", "401"):
                return self._send(int(behaviour), b'{"error": "scripted"}', {"Retry-After": "0"})
            if behaviour == "garbage":
                return self._send(200, b"<html>gateway says hello</html>")
            if behaviour == "slow":
                time.sleep(script.slow_s)
            content = script.reply_text(sid, behaviour)
            reply = {"id": "x", "object": "chat.completion",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
            self._send(200, json.dumps(reply).encode(), {"Content-Type": "application/json"})

    return Handler


@pytest.fixture
def serve(loopback):
    """A scripted chat-completions server on loopback; returns its base URL."""
    return lambda script: loopback(_handler(script), script.release.set)


def tagged_dataset(root: Path, n: int) -> Path:
    """A dataset whose questions carry the sample id, so the server can tell samples apart."""
    data = write_dataset(root, n=n)
    records = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    for r in records:
        r["question"] = f"[{r['id']}] {r['question']}"
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return data


def teacher_argv(data: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["data", "trajectories", "--mode", "teacher", "--data", str(data), "--out", str(out),
            "--base-url", url, "--model", "scripted", "--api-key-env", "MIRG_TEST_KEY",
            "--timeout", "0.5", "--backoff", "0.01", "--http-retries", "3", *extra]


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("MIRG_TEST_KEY", KEY)


PLANS = {
    "s001": ["wrong_image"] * 3,
    "s002": ["bad_box"] * 3,
    "s003": ["malformed", "right"],
    "s004": ["slow", "right"],
    "s005": ["429", "right"],
    "s006": ["500", "right"],
    "s007": ["garbage"] * 3,
    "s008": ["no_image_named"] * 3,
}


def _no_key_anywhere(out: Path, *texts: str) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    for text in texts:
        assert KEY not in text


def test_only_verified_trajectories_land(tmp_path, serve, key_env, capsys):
    data = tagged_dataset(tmp_path / "d", 9)
    script = Script(data, PLANS)
    out = tmp_path / "out"
    assert main(teacher_argv(data, out, serve(script), "--concurrency", "3")) == 0
    captured = capsys.readouterr()
    samples = {s.id: s for s in read_manifest(data)}
    sft = read_jsonl(out / "sft.jsonl")
    assert [r["id"] for r in sft] == ["s000", "s003", "s004", "s005", "s006"]
    for row in sft:
        assert check_trajectory(samples[row["id"]], completion_text(row), CoordSpace("pixel")) is None
    assert len(read_jsonl(out / "rl.jsonl")) == 9
    assert json.loads((out / "trajectories.json").read_text())["coords"] == "pixel"  # the space is recorded
    rejected = {r["id"]: r["reason"] for r in read_jsonl(out / "rejected.jsonl")}
    assert rejected == {"s001": "wrong image", "s002": "low iou", "s007": "unreadable reply", "s008": "reasoning"}
    expected_requests = {"s000": 1, "s001": 3, "s002": 3, "s003": 2, "s004": 2, "s005": 2, "s006": 2,
                         "s007": 3, "s008": 3}
    assert dict(script.per_sample) == expected_requests
    repeated = {script.payload_sample[p] for p, n in script.per_payload.items() if n > 1}
    assert repeated == {"s004", "s005", "s006"}  # only HTTP-level retries repeat a payload
    assert script.auth == {f"Bearer {KEY}"}
    readme = (out / "README.md").read_text()
    assert "mode: teacher" in readme
    assert "| spot_diff | wrong image | 1 |" in readme and "| spot_diff | unreadable reply | 1 |" in readme
    assert "| group_grounding | low iou | 1 |" in readme and "| group_grounding | reasoning | 1 |" in readme
    assert "| common_object | 3 | 3 | 3 | 0 | 0 |" in readme
    assert "teacher: 5 accepted, 4 rejected of 9 samples" in captured.out
    assert "rejected: 1 low iou, 1 reasoning, 1 unreadable reply, 1 wrong image (each sample's reply and why: " \
        in captured.out
    _no_key_anywhere(out, captured.out, captured.err)

    sft_bytes, again = (out / "sft.jsonl").read_bytes(), Script(data, PLANS)
    assert main(teacher_argv(data, out, serve(again), "--concurrency", "3")) == 0
    assert again.total == 0
    assert (out / "sft.jsonl").read_bytes() == sft_bytes  # a rerun rebuilds everything from the cache


def test_rerun_after_a_kill_repeats_no_answered_call(tmp_path, serve):
    data = tagged_dataset(tmp_path / "d", 6)
    script = Script(data)
    script.hang_after = 3  # the 4th request hangs: the run is killed while waiting for it
    url = serve(script)
    out = tmp_path / "out"
    env = {**os.environ, "MIRG_TEST_KEY": KEY}
    cmd = [sys.executable, "-m", "mirg", *teacher_argv(data, out, url, "--concurrency", "1", "--timeout", "20")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while script.total < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert script.total == 4
    assert [r["id"] for r in read_jsonl(out / "sft.jsonl")] == ["s000", "s001", "s002"]  # written as verified
    answered = {p for p, sid in script.payload_sample.items() if sid in ("s000", "s001", "s002")}

    script.hang_after = None
    script.release.set()
    os.environ["MIRG_TEST_KEY"] = KEY
    try:
        assert main(teacher_argv(data, out, url, "--concurrency", "2")) == 0
    finally:
        del os.environ["MIRG_TEST_KEY"]
    assert all(script.per_payload[p] == 1 for p in answered)
    assert script.per_sample["s003"] == 2  # it never got a reply, so it was asked again
    assert script.total == 4 + 3
    assert [r["id"] for r in read_jsonl(out / "sft.jsonl")] == [f"s{i:03d}" for i in range(6)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_down_keeps_what_was_done(tmp_path, serve, key_env, capsys):
    data = tagged_dataset(tmp_path / "d", 4)
    lines = (data / "manifest.jsonl").read_text().splitlines(keepends=True)
    (data / "manifest.jsonl").write_text("".join(lines[:3]))
    out = tmp_path / "out"
    assert main(teacher_argv(data, out, serve(Script(data)))) == 0
    (data / "manifest.jsonl").write_text("".join(lines))
    capsys.readouterr()
    down = f"http://127.0.0.1:{_free_port()}/v1"
    assert main(teacher_argv(data, out, down, "--http-retries", "2")) == 2
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("mirg: error: stopped: no reply from") and "after 3 tries" in error
    assert "1 sample(s) not done" in error and "Traceback" not in captured.err
    assert "teacher: 3 accepted, 0 rejected of 4 samples" in captured.out
    assert [r["id"] for r in read_jsonl(out / "sft.jsonl")] == ["s000", "s001", "s002"]
    readme = (out / "README.md").read_text()
    assert "stopped early" in readme and "| **all** | 4 | 3 | 4 | 0 | 1 |" in readme


def test_no_accepted_trajectory_is_an_error_that_says_why(tmp_path, serve, key_env, capsys):
    """An endpoint that is not a chat-completions server (a gateway's HTML page): every sample rejected, exit 2."""
    data = tagged_dataset(tmp_path / "d", 3)
    out = tmp_path / "out"
    script = Script(data, {sid: ["garbage"] for sid in ("s000", "s001", "s002")})
    assert main(teacher_argv(data, out, serve(script), "--max-attempts", "1")) == 2
    captured = capsys.readouterr()
    assert "teacher: 0 accepted, 3 rejected of 3 samples" in captured.out
    expected = f"mirg: error: no trajectory was accepted (3 unreadable reply); see {out / 'rejected.jsonl'}\n"
    assert captured.err == expected
    assert [r["reason"] for r in read_jsonl(out / "rejected.jsonl")] == ["unreadable reply"] * 3


def test_unauthorized_stops_at_once_without_showing_the_key(tmp_path, serve, key_env, capsys):
    data = tagged_dataset(tmp_path / "d", 5)
    script = Script(data, {f"s{i:03d}": ["401"] for i in range(5)})
    out = tmp_path / "out"
    assert main(teacher_argv(data, out, serve(script), "--concurrency", "1")) == 2
    captured = capsys.readouterr()
    assert script.total == 1
    assert "the endpoint answered HTTP 401" in captured.err and "Traceback" not in captured.err
    _no_key_anywhere(out, captured.out, captured.err)


def test_429_honours_retry_after():
    response = httpx2.Response(429, headers={"Retry-After": "7"})
    assert retry_after(response) == 7.0
    cfg = TeacherConfig(base_url="http://127.0.0.1:1/v1", model="m", backoff=0.5)
    assert backoff_delay(cfg, 3, retry_after(response)) == 7.0
    assert 4.0 <= backoff_delay(cfg, 3, None) <= 4.5  # 0.5 * 2**3 plus up to 0.5 of jitter
    assert retry_after(httpx2.Response(503)) is None
    assert retry_after(httpx2.Response(503, headers={"Retry-After": "soon"})) is None


def test_cache_survives_a_line_cut_short(tmp_path):
    path = tmp_path / CACHE_FILE
    cache = ReplyCache(path)
    cache.put("a", {"content": "one"})
    cache.close()
    with path.open("a") as handle:
        handle.write('{"key": "b", "content": "cut sh')  # a run killed mid-write
    cache = ReplyCache(path)
    assert cache.damaged == 1 and cache.get("a")["content"] == "one"
    cache.put("c", {"content": "three"})
    cache.close()
    again = ReplyCache(path)
    assert again.damaged == 1 and set(again.entries) == {"a", "c"}


@pytest.mark.parametrize("argv,reason", [
    (["--base-url", "ftp://x"], "must start with http"),
    (["--concurrency", "0"], "--concurrency must be at least 1"),
    (["--max-attempts", "0"], "--max-attempts must be at least 1"),
])
def test_bad_teacher_flags(tmp_path, capsys, argv, reason):
    data = tagged_dataset(tmp_path / "d", 1)
    base = ["data", "trajectories", "--mode", "teacher", "--data", str(data), "--out", str(tmp_path / "o"),
            "--model", "m", "--base-url", "http://127.0.0.1:9/v1"]
    assert main(base + argv) == 2
    assert reason in capsys.readouterr().err


def test_teacher_needs_endpoint_and_model(tmp_path, capsys):
    data = tagged_dataset(tmp_path / "d", 1)
    assert main(["data", "trajectories", "--mode", "teacher", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "needs --base-url and --model" in capsys.readouterr().err


def test_config_rejects_nonsense():
    with pytest.raises(MirgError, match="--timeout must be positive"):
        TeacherConfig(base_url="http://127.0.0.1/v1", model="m", timeout=0)


def test_short_placeholder_key_is_sent_and_leaves_replies_intact(tmp_path, serve, monkeypatch):
    monkeypatch.setenv("MIRG_TEST_KEY", "k")  # like vLLM's "EMPTY": a placeholder, not a secret
    data = tagged_dataset(tmp_path / "d", 3)
    script = Script(data)
    out = tmp_path / "out"
    assert main(teacher_argv(data, out, serve(script))) == 0
    assert len(read_jsonl(out / "sft.jsonl")) == 3 and script.auth == {"Bearer k"}


def test_no_key_sends_no_authorization(tmp_path, serve, monkeypatch, capsys):
    monkeypatch.delenv("MIRG_TEST_KEY", raising=False)
    data = tagged_dataset(tmp_path / "d", 2)
    script = Script(data)
    assert main(teacher_argv(data, tmp_path / "out", serve(script))) == 0
    assert script.auth == {""}
    assert "$MIRG_TEST_KEY is not set" in capsys.readouterr().err
