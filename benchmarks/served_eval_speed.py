"""Throughput of `mirg eval --backend openai` against a loopback server that answers instantly.

Usage: python benchmarks/served_eval_speed.py [--n 1000] [--concurrency 16] [--images 3] [--size 224]

Writes N generated samples (IMAGES distinct PNG images of SIZE x SIZE each) to a temporary folder, starts a
chat-completions server on 127.0.0.1 in this process (it reads each request, checks that it carries the
sample's images, and answers at once), then runs the real `mirg eval --backend openai` command against it
and prints one JSON line: the asking rate the command reports (samples answered per second while asking),
the whole command's wall time (start-up, scoring and report included) and the machine's load.
Target: at least 50 samples/s at --concurrency 16.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPLY = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content":
                    '<think>It is in image 1.</think><answer>{"image": 1, "bbox_2d": [100, 100, 500, 500]}</answer>'}}]})


def write_samples(root: Path, n: int, images: int, size: int) -> None:
    """A manifest of ``n`` samples, each with ``images`` distinct noisy PNGs (so they don't compress to nothing)."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    lines = []
    for i in range(n):
        names = []
        for k in range(images):
            img = Image.effect_noise((size, size), 40).convert("RGB")
            draw = ImageDraw.Draw(img)
            x, y = rng.randrange(size // 2), rng.randrange(size // 2)
            draw.rectangle([x, y, x + size // 3, y + size // 3], fill=(rng.randrange(256), 40 * k % 256, 200))
            name = f"{i:05d}_{k + 1}.png"
            img.save(root / name)
            names.append(name)
        s = size
        lines.append(json.dumps({"id": f"b{i:05d}", "task": "common_object", "images": names,
                                 "image_sizes": [[s, s]] * images, "question": f"Find the square ({i}).",
                                 "target": {"image": 1, "bbox": [s * 0.1, s * 0.1, s * 0.5, s * 0.5]}}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.bad = 0


def start_server(counter: Counter, images: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            payload = json.loads(body)
            parts = payload["messages"][0]["content"]
            ok = sum(1 for p in parts if p["type"] == "image_url") == images
            with counter.lock:
                counter.requests += 1
                counter.bytes += len(body)
                counter.bad += not ok
            data = REPLY.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="samples (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--images", type=int, default=3, help="images per sample (default 3)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    opts = parser.parse_args()
    counter = Counter()
    server = start_server(counter, opts.images)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        write_samples(data, opts.n, opts.images, opts.size)
        cmd = [sys.executable, "-m", "mirg", "eval", "--backend", "openai", "--base-url", url, "--model", "instant",
               "--data", str(data), "--out", f"{tmp}/run", "--coords", "pixel", "--concurrency", str(opts.concurrency)]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
    server.shutdown()
    if proc.returncode != 0:
        sys.exit(proc.stderr[-2000:])
    asked = re.search(r"asked (\d+) sample\(s\) in ([\d.]+) s \(([\d.]+) samples/s\)", proc.stdout)
    print(json.dumps({
        "n": opts.n, "images_per_sample": opts.images, "image_side": opts.size, "concurrency": opts.concurrency,
        "requests": counter.requests, "requests_without_all_images": counter.bad,
        "mean_request_kb": round(counter.bytes / max(counter.requests, 1) / 1024, 1),
        "asking_samples_per_s": float(asked.group(3)), "asking_s": float(asked.group(2)),
        "command_s": round(wall, 2), "command_samples_per_s": round(opts.n / wall, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
