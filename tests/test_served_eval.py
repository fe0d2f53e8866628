"""`mirg eval --backend openai` against a real chat-completions server on loopback.

The server finds the sample a request is about by its question, checks that the request carries exactly
that sample's image files (bytes, order, each once), answers from a per-sample script (right, garbage text,
an HTML page, 429, 500, fail for good, hang, echo the key) with the target box written in the space the
test says the served model speaks, and counts every request per sample.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mirg.cli import main
from mirg.eval.served import prompt_text
from mirg.geometry import CoordSpace
from mirg.schema import Sample, Target, read_manifest, write_manifest

KEY = "sk-served-5ecret-never-written"
SIZES = [(160, 120), (90, 140), (200, 100)]


# ----- data ----------------------------------------------------------------------------------------


def write_data(root: Path, n: int) -> Path:
    """``n`` samples of 2-3 distinct images (one JPEG per sample, the rest PNG), the target in the lower right."""
    root.mkdir(parents=True)
    samples = []
    for i in range(n):
        count = 2 + i % 2
        names = []
        for k in range(count):
            w, h = SIZES[(i + k) % len(SIZES)]
            img = Image.new("RGB", (w, h), ((40 * i) % 256, (90 * k) % 256, 120))
            ImageDraw.Draw(img).rectangle([w // 2, h // 2, w - 5, h - 5], fill=(255, 255 - 20 * k, 10 * i % 256))
            name = f"s{i:03d}_{k + 1}.{'jpg' if k == 0 else 'png'}"
            img.save(root / name)
            names.append(name)
        sizes = [SIZES[(i + k) % len(SIZES)] for k in range(count)]
        target = i % count + 1
        w, h = sizes[target - 1]
        samples.append(Sample(id=f"s{i:03d}", task=("common_object", "spot_diff")[i % 2], images=names,
                              image_sizes=sizes, question=f"[s{i:03d}] Find the bright square in one image.",
                              target=Target(target, (w * 0.5, h * 0.5, w * 0.9, h * 0.9))))
    write_manifest(samples, root / "manifest.jsonl")
    return root


# ----- the server ----------------------------------------------------------------------------------


class Script:
    """What the server says to each sample, request by request, and what it has seen."""

    def __init__(self, data: Path, space: CoordSpace, plans: dict[str, list[str]] | None = None,
                 texts: dict[str, str] | None = None):
        self.data = data
        self.samples = read_manifest(data)
        self.files = {s.id: [hashlib.sha256((data / p).read_bytes()).hexdigest() for p in s.images] for s in self.samples}
        self.space = space
        self.plans = plans or {}
        self.texts = texts or {}  # a fixed reply text per sample (instead of the target box)
        self.lock = threading.Lock()
        self.per_sample: Counter = Counter()
        self.prompts: dict[str, str] = {}  # the last text part of each sample's request
        self.layouts: dict[str, list[str]] = {}  # its parts in order: "image" or the text
        self.problems: list[str] = []
        self.auth: set[str] = set()
        self.hang_after: int | None = None
        self.release = threading.Event()
        self.total = 0

    def find(self, payload: dict) -> tuple[Sample | None, str]:
        """The sample a request is about (its question is in the text) and that text; checks the images."""
        (message,) = payload["messages"]
        texts = [p["text"] for p in message["content"] if p["type"] == "text"]
        urls = [p["image_url"]["url"] for p in message["content"] if p["type"] == "image_url"]
        text = texts[-1]
        matches = [s for s in self.samples if s.question in text]
        if len(matches) != 1:
            self.problems.append(f"no single sample in {text[:80]!r}")
            return None, text
        sample = matches[0]
        sent = [hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest() for url in urls]
        if sent != self.files[sample.id]:
            self.problems.append(f"{sample.id}: images sent are not the sample's files in order")
        return sample, text

    def register(self, body: bytes, auth: str | None) -> tuple[Sample | None, str]:
        payload = json.loads(body)
        sample, text = self.find(payload)
        layout = [p["text"] if p["type"] == "text" else "image" for p in payload["messages"][0]["content"]]
        with self.lock:
            self.total += 1
            self.auth.add(auth or "")
            if sample is None:
                return None, "refuse"
            self.prompts[sample.id], self.layouts[sample.id] = text, layout
            n = self.per_sample[sample.id]
            self.per_sample[sample.id] += 1
            hang = self.hang_after is not None and self.total > self.hang_after
        plan = self.plans.get(sample.id, [])
        return sample, "hang" if hang else (plan[n] if n < len(plan) else "right")

    def reply_text(self, sample: Sample, behaviour: str, auth: str) -> str:
        if sample.id in self.texts:
            return self.texts[sample.id]
        if behaviour == "garbage":
            return "I'm sorry, I can't see any square here."
        size = sample.target_size()
        box = [round(v, 3) for v in self.space.from_pixels(sample.target.bbox, size)]
        answer = json.dumps({"image": sample.target.image, "bbox_2d": box})
        echo = f" (you sent {auth})" if behaviour == "echo" else ""
        return f"<think>It is in image {sample.target.image}{echo}.</think><answer>{answer}</answer>"


def _handler(script: Script) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up or was killed

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path != "/v1/chat/completions":
                return self._send(404, b'{"error": "not found"}')
            auth = self.headers.get("Authorization") or ""
            sample, behaviour = script.register(body, auth)
            if behaviour == "refuse":
                return self._send(400, b'{"error": "not a sample of this test"}')
            if behaviour == "hang":
                script.release.wait(30)
                return self._send(503, b"{}")
            if behaviour in ("429", "500", "fail"):
                return self._send(500 if behaviour == "fail" else int(behaviour), b'{"error": "scripted"}')
            if behaviour == "html":
                return self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            content = script.reply_text(sample, behaviour, auth)
            reply = {"id": "x", "object": "chat.completion",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
            self._send(200, json.dumps(reply).encode())

    return Handler


@pytest.fixture
def serve(loopback):
    """A scripted chat-completions server on loopback; returns its base URL."""
    return lambda script: loopback(_handler(script), script.release.set)


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("MIRG_TEST_KEY", KEY)


def eval_argv(data: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["eval", "--backend", "openai", "--base-url", url, "--model", "served-test", "--data", str(data),
            "--out", str(out), "--api-key-env", "MIRG_TEST_KEY", "--timeout", "5", "--backoff", "0.01",
            "--http-retries", "2", *extra]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def no_key_anywhere(out: Path, *texts: str) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    for text in texts:
        assert KEY not in text


# ----- the cases -----------------------------------------------------------------------------------


def test_all_answered_scored_and_reported_without_the_key(tmp_path, serve, key_env, capsys):
    data = write_data(tmp_path / "d", 8)
    script = Script(data, CoordSpace("norm1000"), plans={"s003": ["echo"]})
    url = serve(script)
    out = tmp_path / "run"
    assert main(eval_argv(data, out, url, "--coords", "norm1000", "--concurrency", "4")) == 0
    captured = capsys.readouterr()
    assert script.problems == []
    assert dict(script.per_sample) == {f"s{i:03d}": 1 for i in range(8)}
    assert script.auth == {f"Bearer {KEY}"}
    assert script.layouts["s000"][:4] == ["Image 1:", "image", "Image 2:", "image"]  # as the model was trained
    assert script.prompts["s000"].startswith("[s000] Find") and "scaled to 0-1000" in script.prompts["s000"]
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    assert metrics["n"] == 8 and metrics["pooled_acc@0.5"] == 1.0 and metrics["pooled_image_acc"] == 1.0
    assert metrics["failed_requests"] == 0 and metrics["missing_predictions"] == 0
    assert metrics["endpoint"] == url and metrics["model"] == "served-test" and metrics["coords"] == "norm1000"
    predictions = {r["id"]: r for r in read_jsonl(out / "predictions.jsonl")}
    assert set(predictions) == {f"s{i:03d}" for i in range(8)}
    assert "(you sent Bearer ***)" in predictions["s003"]["response"]  # the echoed key is blanked out
    run = json.loads((out / "run.json").read_text())
    assert {k: run[k] for k in ("backend", "base_url", "model", "prompt", "coords")} == {
        "backend": "openai", "base_url": url, "model": "served-test", "prompt": "mirg", "coords": "norm1000"}
    report = (out / "report.html").read_text()
    assert "served-test" in report and url in report
    assert "asked 8 sample(s)" in captured.out and "0 got no answer, 0 unreadable" in captured.out
    no_key_anywhere(out, captured.out, captured.err)

    assert main(eval_argv(data, out, url, "--coords", "norm1000")) == 0  # all answered: nothing asked again
    assert script.total == 8


def test_429_and_500_are_retried_and_a_sample_that_keeps_failing_is_recorded(tmp_path, serve, key_env, capsys):
    data = write_data(tmp_path / "d", 5)
    plans = {"s001": ["429", "right"], "s002": ["500", "500", "right"], "s003": ["fail"] * 3}
    script = Script(data, CoordSpace("norm1000"), plans)
    url = serve(script)
    out = tmp_path / "run"
    assert main(eval_argv(data, out, url, "--coords", "norm1000", "--concurrency", "3")) == 0
    captured = capsys.readouterr()
    assert script.problems == []
    assert dict(script.per_sample) == {"s000": 1, "s001": 2, "s002": 3, "s003": 3, "s004": 1}
    records = {r["id"]: r for r in read_jsonl(out / "predictions.jsonl")}
    assert records["s003"]["response"] == "" and "after 3 tries (last: HTTP 500)" in records["s003"]["error"]
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    assert metrics["failed_requests"] == 1 and metrics["n"] == 5
    assert metrics["pooled_acc@0.5"] == pytest.approx(4 / 5)
    per_sample = {r["id"]: r for r in read_jsonl(out / "per_sample.jsonl")}
    assert per_sample["s003"]["parse_ok"] is False and per_sample["s003"]["iou"] == 0.0
    assert "1 got no answer" in captured.out
    assert "1 sample(s) got no answer and score as wrong" in (out / "report.md").read_text()

    script.plans = {}  # the endpoint recovered: a rerun asks only the sample that got no answer
    assert main(eval_argv(data, out, url, "--coords", "norm1000")) == 0
    assert script.per_sample["s003"] == 4 and script.total == 11
    assert [r.get("error") for r in read_jsonl(out / "predictions.jsonl")] == [None] * 5
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    assert metrics["failed_requests"] == 0 and metrics["pooled_acc@0.5"] == 1.0


def test_killed_run_resumes_without_asking_an_answered_sample_again(tmp_path, serve):
    data = write_data(tmp_path / "d", 7)
    script = Script(data, CoordSpace("norm1000"))
    script.hang_after = 4  # requests 5 and 6 hang: the run is killed while waiting for them
    url = serve(script)
    out = tmp_path / "run"
    env = {**os.environ, "MIRG_TEST_KEY": KEY}
    cmd = [sys.executable, "-m", "mirg", *eval_argv(data, out, url, "--coords", "norm1000", "--concurrency", "2")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while script.total < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert script.total == 6
    answered = [r["id"] for r in read_jsonl(out / "predictions.jsonl")]
    assert len(answered) == 4
    with (out / "predictions.jsonl").open("a") as handle:
        handle.write('{"id": "s006", "resp')  # a line cut short by the kill
    script.hang_after = None
    script.release.set()
    os.environ["MIRG_TEST_KEY"] = KEY
    try:
        assert main(eval_argv(data, out, url, "--coords", "norm1000", "--concurrency", "4")) == 0
    finally:
        del os.environ["MIRG_TEST_KEY"]
    assert all(script.per_sample[sid] == 1 for sid in answered)
    assert script.total == 6 + 3  # the two that hung and the one never sent
    ids = [r["id"] for r in read_jsonl(out / "predictions.jsonl")]
    assert sorted(ids) == [f"s{i:03d}" for i in range(7)] and ids[:4] == answered
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    assert metrics["pooled_acc@0.5"] == 1.0 and metrics["missing_predictions"] == 0


def test_garbage_and_html_replies_are_unparsable_answers(tmp_path, serve, key_env, capsys):
    data = write_data(tmp_path / "d", 4)
    script = Script(data, CoordSpace("norm1000"), {"s001": ["garbage"], "s002": ["html"]})
    url = serve(script)
    out = tmp_path / "run"
    assert main(eval_argv(data, out, url, "--coords", "norm1000")) == 0
    captured = capsys.readouterr()
    records = {r["id"]: r for r in read_jsonl(out / "predictions.jsonl")}
    assert records["s001"]["response"].startswith("I'm sorry")
    assert records["s002"]["response"] == "" and "not a chat completion" in records["s002"]["unreadable"]
    per_sample = {r["id"]: r for r in read_jsonl(out / "per_sample.jsonl")}
    for sid in ("s001", "s002"):
        assert per_sample[sid]["parse_ok"] is False and per_sample[sid]["iou"] == 0.0
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    assert metrics["pooled_parse_rate"] == 0.5 and metrics["pooled_acc@0.5"] == 0.5
    assert metrics["unreadable_replies"] == 1 and metrics["failed_requests"] == 0
    assert "0 got no answer, 1 unreadable" in captured.out
    assert main(eval_argv(data, out, url, "--coords", "norm1000")) == 0
    assert script.total == 4  # an answer that can't be read is still an answer: not asked again


def test_a_reply_with_a_lone_surrogate_is_recorded_not_a_crash(tmp_path, serve, key_env):
    data = write_data(tmp_path / "d", 2)
    script = Script(data, CoordSpace("norm1000"), texts={"s001": "\ud800 no box"})  # JSON escapes it as \ud800
    url = serve(script)
    out = tmp_path / "run"
    assert main(eval_argv(data, out, url, "--coords", "norm1000")) == 0
    records = {r["id"]: r for r in read_jsonl(out / "predictions.jsonl")}
    assert records["s001"]["response"] == "? no box"
    assert json.loads((out / "metrics.json").read_text())["overall"]["pooled_parse_rate"] == 0.5


def test_problems_are_counted_among_the_samples_scored_only(tmp_path, serve, key_env):
    data = write_data(tmp_path / "d", 3)
    script = Script(data, CoordSpace("norm1000"), {"s002": ["html"]})
    url = serve(script)
    out = tmp_path / "run"
    assert main(eval_argv(data, out, url, "--coords", "norm1000")) == 0
    assert json.loads((out / "metrics.json").read_text())["overall"]["unreadable_replies"] == 1
    assert main(eval_argv(data, out, url, "--coords", "norm1000", "--max-samples", "2")) == 0
    overall = json.loads((out / "metrics.json").read_text())["overall"]
    assert overall["n"] == 2 and overall["unreadable_replies"] == 0 and script.total == 3


def test_a_malformed_base_url_is_one_line(tmp_path, capsys):
    data = write_data(tmp_path / "d", 1)
    argv = ["eval", "--backend", "openai", "--base-url", "http://[::1/v1", "--model", "m", "--data", str(data),
            "--out", str(tmp_path / "run"), "--coords", "norm1000"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirg: error: --base-url 'http://[::1/v1'") and err.count("\n") == 1


def test_the_box_space_shows_in_the_metrics(tmp_path, serve, key_env):
    """A served Qwen2.5-VL answers in pixels of its resized images (here at max_pixels 6272)."""
    data = write_data(tmp_path / "d", 6)
    served = CoordSpace("resized", 3136, 6272)
    url = serve(Script(data, served))

    def acc(name: str, *flags: str) -> tuple[float, float]:
        assert main(eval_argv(data, tmp_path / name, url, *flags)) == 0
        overall = json.loads((tmp_path / name / "metrics.json").read_text())["overall"]
        return overall["pooled_acc@0.5"], overall["pooled_mean_iou"]

    assert acc("right", "--family", "qwen2_5_vl", "--max-pixels", "6272") == (1.0, pytest.approx(1.0, abs=0.02))
    as_norm1000 = acc("norm1000", "--coords", "norm1000")
    assert as_norm1000[0] == 0.0 and as_norm1000[1] < 0.05
    other_limits = acc("limits", "--family", "qwen2_5_vl")  # the family's default limits, not the server's
    assert other_limits[0] == 0.0 and other_limits[1] < 0.2
    run = json.loads((tmp_path / "right" / "run.json").read_text())
    assert (run["coords"], run["max_pixels"]) == ("resized", 6272)


@pytest.mark.parametrize("model,style", [("qwen2_vl", "migbench"), ("univg-r1", "migbench-think")])
def test_migbench_prompt_then_compat_score_reproduces_the_published_record(tmp_path, serve, key_env, parity_dir,
                                                                           model, style):
    """convert -> eval --prompt migbench -> score --compat migbench, on the real photos of the benchmark: the
    request is the published one and, given the published reply, the score is the published one."""
    bench = parity_dir / "revised_MIG_bench.json"
    converted = tmp_path / "mig"
    assert main(["data", "convert", "migbench", "--in", str(bench), "--images", str(parity_dir / "images"),
                 "--out", str(converted)]) == 0
    (sample,) = read_manifest(converted)
    task, position = sample.id.rsplit("-", 1)
    (result_file,) = (parity_dir / "results" / model).glob(f"*_{task}_*.json")
    published = json.loads(result_file.read_text())[int(position)]
    script = Script(converted, CoordSpace("norm1000"), texts={sample.id: published["answer"]})
    url = serve(script)
    run = tmp_path / "run"
    assert main(eval_argv(converted, run, url, "--family", "qwen2_vl", "--prompt", style)) == 0
    assert script.problems == []  # the two JPEG photos, byte for byte, in order
    assert script.prompts[sample.id] == published["question"]
    assert script.layouts[sample.id] == ["image", "image", published["question"]]  # images first, as MIG-Bench's
    assert "--compat migbench" in (run / "report.md").read_text()
    metrics = tmp_path / "m.json"
    assert main(["score", "--data", str(bench), "--predictions", str(run / "predictions.jsonl"), "--compat",
                 "migbench", "--out", str(metrics), "--per-sample", str(tmp_path / "ps.jsonl")]) == 0
    row = next(r for r in read_jsonl(tmp_path / "ps.jsonl") if r["id"] == sample.id)
    assert row["pred_box_pixels"] == published["filter_answer"]
    assert row["iou"] == pytest.approx(published["iou"], abs=1e-12)


@pytest.mark.parametrize("model,style", [("qwen2_vl", "migbench"), ("univg-r1", "migbench-think")])
def test_migbench_prompt_is_the_published_wording_for_every_sample(parity_dir, model, style):
    """Golden snapshot: the prompt of every revised MIG-Bench sample equals the question its published
    result record states (question + the evaluation's format line, spacing and typos included)."""
    from mirg.data.convert import convert_benchmark
    from mirg.data.migbench import load_benchmark

    path = parity_dir / "revised_MIG_bench.json"
    bench = load_benchmark(json.loads(path.read_text()), path)
    samples = convert_benchmark(bench, [], virtual=True).samples
    by_task: dict[str, list[Sample]] = {}
    for s in samples:
        by_task.setdefault(s.task, []).append(s)
    checked = 0
    for result_file in sorted((parity_dir / "results" / model).glob("*.json")):
        records = json.loads(result_file.read_text())[:-1]
        task = records[0]["task"]
        assert len(records) == len(by_task[task])
        for sample, record in zip(by_task[task], records):
            assert prompt_text(sample, style, "norm1000") == record["question"], sample.id
            checked += 1
    assert checked == len(samples) == 4276


@pytest.mark.parametrize("flags,reason", [
    ([], "--backend openai needs --coords SPACE or --family F"),
    (["--coords", "norm1000", "--batch-size", "4"], "--batch-size applies only to a model folder"),
    (["--coords", "norm1000", "--concurrency", "0"], "--concurrency must be at least 1"),
    (["--coords", "norm1000", "--prompt", "nope"], None),
])
def test_bad_served_flags_are_one_line(tmp_path, capsys, flags, reason):
    data = write_data(tmp_path / "d", 1)
    argv = ["eval", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
            "--data", str(data), "--out", str(tmp_path / "run"), *flags]
    if reason is None:  # argparse refuses a choice it does not know
        with pytest.raises(SystemExit):
            main(argv)
        return
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirg: error: ") and reason in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_served_flags_are_refused_for_a_model_folder(tmp_path, capsys):
    data = write_data(tmp_path / "d", 1)
    assert main(["eval", "--model", "embedded", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--base-url", "http://127.0.0.1:9/v1", "--family", "qwen2_vl"]) == 2
    assert "--base-url, --family applies only to --backend openai" in capsys.readouterr().err


def test_resuming_with_another_model_or_prompt_is_refused(tmp_path, serve, key_env, capsys):
    data = write_data(tmp_path / "d", 2)
    script = Script(data, CoordSpace("norm1000"))
    url = serve(script)
    out = tmp_path / "run"
    assert main(eval_argv(data, out, url, "--coords", "norm1000")) == 0
    argv = eval_argv(data, out, url, "--coords", "norm1000")
    argv[argv.index("served-test")] = "another-model"
    assert main(argv) == 2
    assert main(eval_argv(data, out, url, "--coords", "norm1000", "--prompt", "migbench")) == 2
    err = capsys.readouterr().err
    assert "another model (served-test)" in err and "another prompt (mirg)" in err
    assert script.total == 2


def test_an_endpoint_refusing_the_key_stops_at_once(tmp_path, key_env, capsys):
    """401 for everything: one request, one line naming the status, nothing recorded, no key shown."""
    data = write_data(tmp_path / "d", 4)
    seen = []

    class Refuse(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"error": f"bad key {self.headers.get('Authorization')}"}).encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        out = tmp_path / "run"
        assert main(eval_argv(data, out, url, "--coords", "norm1000", "--concurrency", "1")) == 2
    finally:
        server.shutdown()
        server.server_close()
    captured = capsys.readouterr()
    assert len(seen) == 1 and "HTTP 401" in captured.err and "rerun the same command" in captured.err
    assert (out / "predictions.jsonl").read_text() == ""
    no_key_anywhere(out, captured.out, captured.err)
