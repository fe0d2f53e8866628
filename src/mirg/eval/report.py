"""Evaluation reports: `report.md` and a self-contained `report.html` for one run.

A report shows the per-task table and the overall row, a confusion of predicted vs target image, a
gallery of target (green) and predicted (red) boxes drawn on the images — sampled successes and
failures per task, each with its question and the model's answer (the reasoning folded) — and the
training curves (loss, each reward, KL, completion length) when the model folder holds a
``trainer_state.json``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mirg.eval.report_text import sampling_note
from mirg.schema import Sample
from mirg.eval.scoring import SampleScore

TARGET_COLOUR, PRED_COLOUR = (0, 170, 0), (220, 0, 0)
THUMB_HEIGHT = 150


@dataclass
class Figure:
    """A picture of the report: a name (its file under ``report_files/``), a caption and PNG bytes; a gallery
    picture also carries the sample's question and the model's response."""

    name: str
    caption: str
    png: bytes
    question: str | None = None
    response: str | None = None


# --- tables ---------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


TABLE_COLUMNS = [("n", "n"), ("acc@0.3", "acc@0.3"), ("acc@0.5", "acc@0.5"), ("acc@0.7", "acc@0.7"),
                 ("mean_iou", "mIoU"), ("image_acc", "image acc"), ("format_rate", "format"), ("parse_rate", "parse")]


def metrics_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """Rows of the per-task table (percentages), then the task-mean (AVG) and pooled rows."""
    rows = []
    for task, m in metrics["tasks"].items():
        rows.append([task] + [str(m[k]) if k == "n" else _pct(m[k]) for k, _ in TABLE_COLUMNS])
    o = metrics["overall"]
    for label, prefix in (("task mean (AVG)", "task_mean_"), ("pooled", "pooled_")):
        n = str(o["n"]) if prefix == "pooled_" else ""
        rows.append([label, n] + [_pct(o.get(prefix + k)) for k, _ in TABLE_COLUMNS[1:]])
    return rows


def confusion(samples: Sequence[Sample], scores: Sequence[SampleScore]) -> tuple[list[str], list[list[int]]]:
    """Counts of (target image, predicted image); the last column counts unparsable answers."""
    width = max((s.num_images for s in samples), default=1)
    labels = [str(k) for k in range(1, width + 1)] + ["none"]
    matrix = [[0] * (width + 1) for _ in range(width)]
    for sample, score in zip(samples, scores):
        col = score.pred_image - 1 if score.pred_image else width
        matrix[sample.target.image - 1][col] += 1
    return labels, matrix


# --- pictures -------------------------------------------------------------------------------------


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _thumb(path: Path, size: tuple[int, int]):
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
    scale = THUMB_HEIGHT / size[1]
    return img.resize((max(1, round(size[0] * scale)), THUMB_HEIGHT)), scale


def _outline(draw, box: Sequence[float], scale: float, colour: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = (v * scale for v in box)
    draw.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=colour, width=2)


def _number(draw, k: int) -> None:
    """Image ``k``'s number in the top-left corner, white on a dark tab: legible on any picture."""
    right, bottom = draw.textbbox((3, 2), str(k))[2:]
    draw.rectangle([0, 0, right + 3, bottom + 2], fill=(0, 0, 0))
    draw.text((3, 2), str(k), fill=(255, 255, 255))


def draw_sample(sample: Sample, score: SampleScore, root: Path):
    """All images of ``sample`` side by side, the target box in green and the predicted one in red."""
    from PIL import Image, ImageDraw

    thumbs = []
    for k, (rel, size) in enumerate(zip(sample.images, sample.image_sizes), start=1):
        img, scale = _thumb(root / rel, size)
        draw = ImageDraw.Draw(img)
        _number(draw, k)
        if k == sample.target.image:
            _outline(draw, sample.target.bbox, scale, TARGET_COLOUR)
        if score.pred_image == k and score.pred_box_pixels:
            _outline(draw, score.pred_box_pixels, scale, PRED_COLOUR)
        thumbs.append(img)
    canvas = Image.new("RGB", (sum(t.width for t in thumbs) + 4 * (len(thumbs) - 1), THUMB_HEIGHT), "white")
    x = 0
    for t in thumbs:
        canvas.paste(t, (x, 0))
        x += t.width + 4
    return canvas


def gallery(samples: Sequence[Sample], scores: Sequence[SampleScore], root: Path, per_task: int = 2,
            seed: int = 0, responses: dict[str, str] | None = None) -> list[Figure]:
    """Up to ``per_task`` successes (IoU >= 0.5) and failures per task, sampled reproducibly, each with its question
    and, where ``responses`` has it, the model's answer."""
    responses = responses or {}
    rng = random.Random(seed)
    by_task: dict[str, list[tuple[Sample, SampleScore]]] = {}
    for sample, score in zip(samples, scores):
        by_task.setdefault(sample.task, []).append((sample, score))
    figures = []
    for task in sorted(by_task):
        pairs = by_task[task]
        for kind, chosen in (("success", [p for p in pairs if p[1].iou >= 0.5]),
                             ("failure", [p for p in pairs if p[1].iou < 0.5])):
            for sample, score in rng.sample(chosen, min(per_task, len(chosen))):
                caption = (f"{task} · {kind} · {sample.id}: target image {sample.target.image}, "
                           f"predicted {score.pred_image or 'none'}, IoU {score.iou:.2f}")
                png = _png(draw_sample(sample, score, root))
                figures.append(Figure(f"{task}_{kind}_{sample.id}.png", caption, png, sample.question,
                                      responses.get(sample.id)))
    return figures


# --- training curves ------------------------------------------------------------------------------

CURVE_GROUPS = [
    ("loss", lambda k: k == "loss"),
    ("rewards", lambda k: k.startswith("rewards/") and k.endswith("/mean") or k == "reward"),
    ("KL", lambda k: k == "kl"),
    ("completion length", lambda k: k == "completions/mean_length"),
]


def read_log_history(model_dir: Path | None) -> list[dict[str, Any]]:
    """The trainer's log history from ``model_dir/trainer_state.json`` (empty when there is none)."""
    if model_dir is None or not (model_dir / "trainer_state.json").is_file():
        return []
    try:
        state = json.loads((model_dir / "trainer_state.json").read_text(encoding="utf-8"))
    except ValueError:  # unreadable JSON or not UTF-8: no curves rather than no report
        return []
    history = state.get("log_history") if isinstance(state, dict) else None
    return [row for row in history if isinstance(row, dict)] if isinstance(history, list) else []


def curve_figures(history: list[dict[str, Any]]) -> list[Figure]:
    """One plot per group of logged series that is present (loss, rewards, KL, completion length)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    for title, wanted in CURVE_GROUPS:
        keys = sorted({k for row in history for k in row if wanted(k)})
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(5, 3), dpi=90)
        for key in keys:
            points = [(row["step"], row[key]) for row in history if key in row and "step" in row]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=key, marker="." if len(points) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend(fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        figures.append(Figure(f"curve_{title.replace(' ', '_')}.png", f"training: {title}", buffer.getvalue()))
    return figures


# --- documents ------------------------------------------------------------------------------------


def markdown_report(title: str, metrics: dict[str, Any], conf: tuple[list[str], list[list[int]]],
                    figures: list[Figure], notes: Sequence[str] = ()) -> str:
    """``report.md``: tables in Markdown, pictures linked from ``report_files/``."""
    header = ["task"] + [label for _, label in TABLE_COLUMNS]
    lines = [f"# {title}", "", *notes, "" if notes else "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in metrics_rows(metrics)]
    labels, matrix = conf
    lines += ["", "## Predicted vs target image", "", "| target \\ predicted | " + " | ".join(labels) + " |",
              "|" + "---|" * (len(labels) + 1)]
    lines += [f"| {k + 1} | " + " | ".join(str(v) for v in row) + " |" for k, row in enumerate(matrix)]
    for section, prefix in (("Training curves", "curve_"), ("Gallery (green: target, red: prediction)", "")):
        chosen = [f for f in figures if f.name.startswith("curve_") == (prefix == "curve_")]
        if chosen:
            lines += ["", f"## {section}", ""] + [_markdown_figure(f) for f in chosen]
    return "\n".join(lines) + "\n"


def _markdown_figure(figure: Figure) -> str:
    """A picture, its caption and, for a gallery sample, its question and the answer (reasoning in <details>)."""
    text = f"![{figure.caption}](report_files/{figure.name})  \n{figure.caption}\n"
    if figure.question is not None:
        text += f"\n**Question:** {_one_line(figure.question)}\n"
    if figure.response is not None:
        reasoning, answer = split_response(figure.response)
        text += f"\n**Answer:** `{_one_line(answer) or '(none)'}`\n"
        if reasoning:
            text += f"\n<details><summary>reasoning</summary>\n\n{html.escape(reasoning)}\n\n</details>\n"
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def split_response(response: str) -> tuple[str, str]:
    """A response's reasoning (inside its first ``<think>``) and what it answers (its ``<answer>`` block, else the
    text after the reasoning, else the whole response), for a reader.

    >>> split_response('<think>It is in image 2.</think><answer>{"image": 2}</answer>')
    ('It is in image 2.', '{"image": 2}')
    >>> split_response("no tags at all")
    ('', 'no tags at all')
    """
    from mirg.answer import THINK_CLOSE, AnswerError, answer_block, think_block

    reasoning = think_block(response).strip()
    try:
        answer = answer_block(response)
    except AnswerError:  # no answer tags: show what the model wrote instead
        answer = ""
    if not answer:
        end = response.find(THINK_CLOSE)
        answer = response[end + len(THINK_CLOSE):] if end != -1 else ("" if reasoning else response)
    return reasoning, answer.strip()


def _html_table(header: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_figures(figures: list[Figure]) -> str:
    return "".join(
        f'<figure><img alt="{html.escape(f.caption)}" src="data:image/png;base64,{base64.b64encode(f.png).decode()}">'
        f"<figcaption>{html.escape(f.caption)}{_html_dialogue(f)}</figcaption></figure>"
        for f in figures
    )


def _html_dialogue(figure: Figure) -> str:
    """A gallery sample's question and the model's answer, its reasoning folded (a <details> the reader opens)."""
    parts = []
    if figure.question is not None:
        parts.append(f'<p class="question"><b>Question:</b> {html.escape(figure.question)}</p>')
    if figure.response is not None:
        reasoning, answer = split_response(figure.response)
        parts.append(f'<p class="answer"><b>Answer:</b> <code>{html.escape(answer) or "(none)"}</code></p>')
        if reasoning:
            parts.append(f"<details><summary>reasoning</summary><p>{html.escape(reasoning)}</p></details>")
    return "".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:6px;vertical-align:top}figcaption{font-size:12px;max-width:600px}
figcaption p{margin:4px 0;text-align:left}details{font-size:12px;max-width:600px;white-space:pre-wrap}"""


def html_report(title: str, metrics: dict[str, Any], conf: tuple[list[str], list[list[int]]],
                figures: list[Figure], notes: Sequence[str] = ()) -> str:
    """``report.html``: one file, pictures embedded, no scripts and no external resources."""
    header = ["task"] + [label for _, label in TABLE_COLUMNS]
    labels, matrix = conf
    conf_rows = [[str(k + 1)] + [str(v) for v in row] for k, row in enumerate(matrix)]
    curves = [f for f in figures if f.name.startswith("curve_")]
    shots = [f for f in figures if not f.name.startswith("curve_")]
    parts = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        "".join(f"<p>{html.escape(n)}</p>" for n in notes),
        _html_table(header, metrics_rows(metrics), "metrics"),
        "<h2>Predicted vs target image</h2>",
        _html_table(["target \\ predicted"] + labels, conf_rows, "confusion"),
    ]
    if curves:
        parts += ["<h2>Training curves</h2>", _html_figures(curves)]
    if shots:
        parts += ["<h2>Gallery (green: target, red: prediction)</h2>", _html_figures(shots)]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: Path, title: str, samples: Sequence[Sample], scores: Sequence[SampleScore],
                 metrics: dict[str, Any], data_root: Path, model_dir: Path | None = None,
                 notes: Sequence[str] = (), per_task: int = 2, responses: dict[str, str] | None = None) -> Path:
    """Write ``report.md`` (+ ``report_files/``) and ``report.html`` into ``run_dir``; returns the HTML path.
    ``responses`` (id -> the model's text) puts each gallery sample's answer beside its question."""
    figures = curve_figures(read_log_history(model_dir)) + gallery(samples, scores, data_root, per_task,
                                                                    responses=responses)
    conf = confusion(samples, scores)
    note = sampling_note(metrics["overall"])
    notes = [*notes, note] if note else list(notes)
    files = run_dir / "report_files"
    files.mkdir(parents=True, exist_ok=True)
    for f in figures:
        (files / f.name).write_bytes(f.png)
    (run_dir / "report.md").write_text(markdown_report(title, metrics, conf, figures, notes), encoding="utf-8")
    out = run_dir / "report.html"
    out.write_text(html_report(title, metrics, conf, figures, notes), encoding="utf-8")
    return out
