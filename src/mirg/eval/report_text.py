"""Plain-text tables of metrics for the terminal (no heavy imports)."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:6.2f}"


def metrics_table(metrics: dict[str, Any]) -> str:
    """A fixed-width table: one row per task, then the task mean (MIG-Bench's AVG) and pooled rows."""
    head = f"{'task':<18}{'n':>6}{'acc@0.3':>9}{'acc@0.5':>9}{'acc@0.7':>9}{'mIoU':>8}{'image':>8}{'format':>8}{'parse':>8}"
    lines = [head, "-" * len(head)]
    for task, m in metrics["tasks"].items():
        lines.append(
            f"{task:<18}{m['n']:>6}{_pct(m['acc@0.3']):>9}{_pct(m['acc@0.5']):>9}{_pct(m['acc@0.7']):>9}"
            f"{_pct(m['mean_iou']):>8}{_pct(m['image_acc']):>8}{_pct(m['format_rate']):>8}{_pct(m['parse_rate']):>8}"
        )
    o = metrics["overall"]
    lines.append("-" * len(head))
    for label, prefix in (("task mean (AVG)", "task_mean_"), ("pooled", "pooled_")):
        n = o["n"] if prefix == "pooled_" else ""
        lines.append(
            f"{label:<18}{n:>6}{_pct(o[prefix + 'acc@0.3']):>9}{_pct(o[prefix + 'acc@0.5']):>9}"
            f"{_pct(o[prefix + 'acc@0.7']):>9}{_pct(o[prefix + 'mean_iou']):>8}{_pct(o[prefix + 'image_acc']):>8}"
            f"{_pct(o[prefix + 'format_rate']):>8}{_pct(o[prefix + 'parse_rate']):>8}"
        )
    note = sampling_note(o)
    return "\n".join(lines + ([note] if note else []))


def sampling_note(overall: dict[str, Any]) -> str | None:
    """One line on how far the task-mean acc@0.5 may move with the draw of samples (None where not recorded)."""
    se = overall.get("task_mean_acc@0.5_se")
    if se is None:
        return None
    return (f"AVG acc@0.5 {100 * overall['task_mean_acc@0.5']:.1f}% ± {100 * se:.1f} points (one standard error "
            f"from the {overall['n']} samples drawn: two models measured on this many samples can differ by about "
            "twice that by the draw alone)")
