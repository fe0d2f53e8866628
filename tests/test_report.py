"""Reports: tables, confusion, gallery and curves, and the HTML opened in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from PIL import Image, ImageDraw

from mirg.answer import render_answer
from mirg.eval.report import confusion, write_report
from mirg.geometry import CoordSpace
from mirg.schema import Sample, Target
from mirg.eval.scoring import score_response, summarize


@pytest.fixture
def run(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    samples, responses = [], []
    for i in range(6):
        names = []
        for k in range(1, 3):
            img = Image.new("RGB", (96, 64), (200, 200, 200))
            ImageDraw.Draw(img).ellipse([10 + 5 * i, 10, 40 + 5 * i, 40], fill=(200, 0, 0))
            name = f"images/{i}_{k}.png"
            img.save(root / name)
            names.append(name)
        task = "common_object" if i < 3 else "diff"
        samples.append(Sample(f"s{i}", task, names, [(96, 64)] * 2, f"Where is the red disc <{i}>?",
                              Target(1 + i % 2, (10 + 5 * i, 10, 40 + 5 * i, 40))))
        guess = 1 + i % 2 if i != 4 else 2 - i % 2  # one wrong image
        think = f"The red disc of sample {i} is in image {guess} & nowhere else."
        responses.append(render_answer(guess, [10 + 5 * i, 12, 40 + 5 * i, 40], think) if i != 5 else "no answer")
    scores = [score_response(s, r, CoordSpace("pixel")) for s, r in zip(samples, responses)]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    history = [{"step": s, "loss": 1.0 / s, "rewards/image_reward/mean": s / 10, "kl": 0.01 * s,
                "completions/mean_length": 50 + s} for s in range(1, 6)]
    (model_dir / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    out = tmp_path / "run"
    html_path = write_report(out, "Tiny run", samples, scores, summarize(scores), root, model_dir=model_dir,
                             responses={s.id: r for s, r in zip(samples, responses)})
    return out, html_path, samples, scores


def test_report_contents(run):
    out, html_path, samples, scores = run
    md = (out / "report.md").read_text()
    assert "| common_object | 3 |" in md and "task mean (AVG)" in md
    se = summarize(scores)["overall"]["task_mean_acc@0.5_se"]
    assert f"± {100 * se:.1f} points (one standard error from the 6 samples drawn" in md
    assert "## Training curves" in md and "## Predicted vs target image" in md
    assert len(list((out / "report_files").glob("curve_*.png"))) == 4  # loss, rewards, KL, length
    gallery = [p for p in (out / "report_files").glob("*.png") if not p.name.startswith("curve_")]
    assert any("failure" in p.name for p in gallery) and any("success" in p.name for p in gallery)
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == len(list((out / "report_files").glob("*.png")))
    assert "<script" not in page and "http" not in page  # self-contained


def test_gallery_shows_each_samples_question_and_answer_with_the_reasoning_folded(run):
    out, html_path, samples, scores = run
    page, md = html_path.read_text(), (out / "report.md").read_text()
    shown = [p.name.rsplit("_", 1)[1][:-4] for p in (out / "report_files").glob("*.png") if not p.name.startswith("curve_")]
    assert shown
    for sid in shown:
        i = int(sid[1:])
        # the question beside its own picture, escaped; the answer's JSON visible, the reasoning inside <details>
        figure = page[page.index(f"{sid}: target image"):].split("</figure>", 1)[0]
        assert f"Where is the red disc &lt;{i}&gt;?" in figure
        if i == 5:
            assert "<code>no answer</code>" in figure and "<details>" not in figure
            continue
        assert f"&quot;image&quot;: {scores[i].pred_image}" in figure.split("<details>")[0]
        assert f"<details><summary>reasoning</summary><p>The red disc of sample {i} is in image " \
               f"{scores[i].pred_image} &amp; nowhere else.</p></details>" in figure
        assert f"**Question:** Where is the red disc <{i}>?" in md and f"The red disc of sample {i}" in md


def test_gallery_numbers_each_image_legibly_on_a_light_picture(run):
    from mirg.eval.report import draw_sample

    _, _, samples, scores = run
    root = run[0].parent / "data"
    light = root / "images" / "white.png"
    Image.new("RGB", (96, 64), (250, 250, 250)).save(light)
    sample = Sample("w", "diff", ["images/white.png"] * 2, [(96, 64)] * 2, "q", Target(1, (50, 30, 90, 60)))
    canvas = draw_sample(sample, scores[0], root)
    for x0 in (0, canvas.width // 2 + 2):  # each image's top-left corner
        corner = [canvas.getpixel((x0 + x, y)) for x in range(12) for y in range(14)]
        assert any(max(px) < 40 for px in corner), "the number needs a dark tab"
        assert any(min(px) > 230 for px in corner if px != (250, 250, 250)), "and a white number on it"


@pytest.mark.parametrize("state", ['[{"loss": 1.0}]', '{"log_history": {"loss": 1.0}}', '{"log_history": null}',
                                   b"\xff\xfe{", "{broken"])
def test_an_unreadable_trainer_log_gives_no_curves_not_a_failed_report(tmp_path, state):
    from mirg.eval.report import read_log_history

    target = tmp_path / "trainer_state.json"
    target.write_bytes(state if isinstance(state, bytes) else state.encode())
    assert read_log_history(tmp_path) == []
    target.write_text('{"log_history": [{"step": 1, "loss": 2.0}, 3]}')
    assert read_log_history(tmp_path) == [{"step": 1, "loss": 2.0}]


def test_confusion_counts(run):
    _, _, samples, scores = run
    labels, matrix = confusion(samples, scores)
    assert labels == ["1", "2", "none"]
    assert sum(map(sum, matrix)) == 6
    assert matrix[1][2] == 1  # s5 (target 2) has no parsable answer
    assert matrix[0][1] == 1  # s4 (target 1) answered image 2


def test_html_report_in_headless_chromium(run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (the Makefile's test setup installs Debian's chromium where apt works)")
    _, html_path, _, _ = run
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom",
         html_path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert '<table class="metrics">' in proc.stdout and "common_object" in proc.stdout
    assert proc.stdout.count("<img") >= 4
