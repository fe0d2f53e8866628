"""The demo's own report: base vs SFT vs SFT+GRPO side by side, the training curves of both stages, and
the final model's gallery, in one self-contained ``report.html`` (and ``report.md``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from mirg.eval.report import STYLE, Figure, _html_figures, _html_table, _pct, curve_figures, read_log_history

BLIND_NOTE = ("blind: the answers the questions alone give, fitted on the training split (`mirg data blind`): "
              "image choice up to the blind row's is read from the question, not from the images.")
OVERALL_COLUMNS = [("task_mean_acc@0.5", "AVG acc@0.5 (task mean)"),
                   ("task_mean_acc@0.5_se", "± se (the samples drawn)"), ("pooled_acc@0.5", "pooled acc@0.5"),
                   ("pooled_acc@0.3", "acc@0.3"), ("pooled_acc@0.7", "acc@0.7"), ("pooled_mean_iou", "mIoU"),
                   ("pooled_image_acc", "image acc"), ("pooled_format_rate", "format")]


def stage_rows(metrics: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [[stage] + [_pct(m["overall"].get(key)) for key, _ in OVERALL_COLUMNS] for stage, m in metrics.items()]


def task_rows(metrics: dict[str, dict[str, Any]]) -> list[list[str]]:
    tasks = sorted({t for m in metrics.values() for t in m["tasks"]})
    return [[t] + [_pct(m["tasks"].get(t, {}).get("acc@0.5")) for m in metrics.values()] for t in tasks]


def stage_curves(out: Path) -> list[Figure]:
    figures = []
    for stage in ("sft", "sft_grpo"):
        for f in curve_figures(read_log_history(out / stage)):
            figures.append(Figure(f"{stage}_{f.name}", f"{stage}: {f.caption}", f.png))
    return figures


def gallery_figures(out: Path) -> list[Figure]:
    """The final model's gallery, read back from its evaluation report's files."""
    folder = out / "eval" / "sft_grpo" / "report_files"
    if not folder.is_dir():
        return []
    return [Figure(p.name, p.stem.replace("_", " "), p.read_bytes())
            for p in sorted(folder.glob("*.png")) if not p.name.startswith("curve_")]


def write_demo_report(out: Path, metrics: dict[str, dict[str, Any]], summary: dict[str, Any]) -> Path:
    """Write ``report.md`` and ``report.html`` of the demo into ``out``; returns the HTML path."""
    stages = list(metrics)
    title = "mirg demo: base vs SFT vs SFT+GRPO on held-out synthetic data"
    note = (f"seed {summary['seed']}; wall {summary['wall_s']:.0f} s; peak memory {summary['peak_rss_mib']:.0f} MiB; "
            "accuracies are image-aware (IoU 0 when the predicted image is wrong), in %.")
    curves, shots = stage_curves(out), gallery_figures(out)
    md = [f"# {title}", "", note, "", "| stage | " + " | ".join(h for _, h in OVERALL_COLUMNS) + " |",
          "|" + "---|" * (len(OVERALL_COLUMNS) + 1)]
    md += ["| " + " | ".join(r) + " |" for r in stage_rows(metrics)]
    md += ["", "| task (acc@0.5) | " + " | ".join(stages) + " |", "|" + "---|" * (len(stages) + 1)]
    md += ["| " + " | ".join(r) + " |" for r in task_rows(metrics)]
    md += ["", BLIND_NOTE, "", "Per-stage reports: " + ", ".join(f"[{s}](eval/{s}/report.html)" for s in stages
                                                                  if (out / "eval" / s / "report.html").is_file()), ""]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    page = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>",
        _html_table(["stage"] + [h for _, h in OVERALL_COLUMNS], stage_rows(metrics), "metrics"),
        _html_table(["task (acc@0.5)"] + stages, task_rows(metrics), "tasks"),
        f"<p>{html.escape(BLIND_NOTE)}</p>",
    ]
    if curves:
        page += ["<h2>Training curves</h2>", _html_figures(curves)]
    if shots:
        page += ["<h2>Final model: gallery (green: target, red: prediction)</h2>", _html_figures(shots)]
    page.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(page), encoding="utf-8")
    return path
