"""The model card (README.md) written next to a pretrained tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _config_line(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config", {})
    vision = config.get("vision_config", {})
    return (f"`{config.get('model_type')}`: language model hidden {text.get('hidden_size')}, "
            f"{text.get('num_hidden_layers')} layers, {text.get('num_attention_heads')} heads, vocabulary "
            f"{text.get('vocab_size')}; vision tower hidden {vision.get('hidden_size')}, depth "
            f"{vision.get('depth', vision.get('num_hidden_layers'))}, patch {vision.get('patch_size')}")


def _parameters(folder: Path) -> int | None:
    from safetensors import safe_open

    total = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                total += _numel(handle.get_slice(key).get_shape())
    return total or None


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def wall_time_line(summary: dict[str, Any]) -> str:
    """Training and total wall time; a resumed run says which stages an earlier run of the command trained."""
    train = f"Training wall time (sum of the stages) {summary['train_wall_s'] / 60:.1f} min"
    earlier = [st["stage"] for st in summary["stages"] if st.get("resumed")]
    total = f"{summary['total_wall_s'] / 60:.1f} min"
    peak = f"peak memory {summary['peak_rss_mib']:.0f} MiB"
    if not earlier:
        return f"{train}; total with data and evaluation {total}; {peak}."
    names = earlier[0] if len(earlier) == 1 else f"{', '.join(earlier[:-1])} and {earlier[-1]}"
    stages = "stage" if len(earlier) == 1 else "stages"
    return (f"{train}. This run resumed an earlier run of the same command, which had trained the {names} "
            f"{stages}; the resumed run took {total} with data and evaluation; {peak} (resumed run).")


def described_text(summary: dict[str, Any], listing: dict[str, Any]) -> str:
    """The clause on per-image descriptions, for curricula whose trajectories write them (brief, full)."""
    if not any(stage.get("detail") in ("brief", "full") for stage in summary.get("stages", [])):
        return ""
    return (f"objects whose colour and shape its image description names {_pct(listing.get('described_recall'))} "
            f"(of the labels it names, {_pct(listing.get('described_precision'))} are right); ")


def _cooldown(plan: dict[str, Any]) -> str:
    """How the learning rate ends, where the plan cools it down."""
    fraction = float(plan.get("cooldown", 0.0))
    return f", falling linearly to zero over the last stage's final {fraction:.0%}" if fraction else ""


def _labels(plan: dict[str, Any]) -> str:
    """How labels are tokenized, where each is one token."""
    if plan.get("label_tokens_last"):
        return " (each colour-and-shape label one token from the last stage on, two words before)"
    return " (each colour-and-shape label one token)" if plan.get("label_tokens") else ""


def _order(plan: dict[str, Any]) -> str:
    """The order of the objects in its lists (`mirg data trajectories --order`)."""
    return "alphabetically by label" if plan.get("order") == "label" else "left to right"


def write_model_card(folder: Path, summary: dict[str, Any]) -> Path:
    """README.md: architecture, parameters, data and stages, wall time, metrics and the exact command."""
    plan, metrics = summary["plan"], summary["metrics"]
    one = metrics.get("perception_one_image", {})
    two = metrics.get("ten_families_two_images", {})
    lines = [
        "# mirg embedded base: a tiny vision-language model that sees and localises",
        "",
        "Made by `mirg model pretrain-tiny` from random weights, offline, on a CPU. It stands in for the "
        "pretrained VLM that MIRG-RL starts from: it is trained to perceive and ground objects in the synthetic "
        "images, and has never seen the ten cross-image task families (those are what SFT + GRPO teach).",
        "",
        f"- Architecture: {_config_line(folder)}{_labels(plan)}",
        f"- Parameters: {_parameters(folder):,}",
        f"- Images: {plan['image_size']} px; its processor resizes any larger image down to "
        f"{plan['image_size'] ** 2:,} pixels, what it was trained to see; boxes written as the family's coordinates "
        f"(see `mirg model info`); objects listed {_order(plan)}.",
        f"- Seed {plan['seed']}; learning rate {plan['learning_rate']}{_cooldown(plan)}; batch {plan['batch_size']}.",
        "",
        "## Stages",
        "",
        "| stage | images | objects per image | trajectories | steps | samples | final loss | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st in summary["stages"]:
        images = f"{st.get('min_images', '-')}-{st.get('max_images', '-')}"
        loss = st.get("final_loss")
        detail = "dense labels" if st.get("detail") == "none" else st.get("detail", "-")
        lines.append(f"| {st['stage']} | {images} | ≤{st.get('max_objects', '-')} | {detail} | "
                     f"{st.get('steps', '-')} | {st.get('samples', '-')} | {'-' if loss is None else f'{loss:.3f}'} | "
                     f"{st['wall_s']:.0f} s |")
    if summary.get("selection"):
        picked = ", ".join(f"{row['stage_output']} {_pct(row['validation_acc@0.5'])}" for row in summary["selection"])
        if summary.get("plan", {}).get("select") == "last":
            lines += ["", f"Shipped: the output of `{summary['selected']}`, the last stage (`--select last`: the only "
                          f"one that has listed several images); acc@0.5 on 100 validation samples of one-image "
                          f"perception: {picked}."]
        else:
            lines += ["", f"Shipped: the output of `{summary['selected']}`, the stage with the best acc@0.5 on 100 "
                          f"validation samples of one-image perception ({picked})."]
    lines += [
        "",
        wall_time_line(summary),
        *([summary["history"]] if summary.get("history") else []),
        "",
        "## Held-out evaluation",
        "",
        f"- One-image perception ({plan['eval_samples']} samples): acc@0.5 "
        f"{_pct(one.get('overall', {}).get('pooled_acc@0.5'))}, mIoU {_pct(one.get('overall', {}).get('pooled_mean_iou'))}; "
        f"{described_text(summary, one.get('listing', {}))}objects it lists by colour and "
        f"shape {_pct(one.get('listing', {}).get('label_recall'))}, with their box (IoU >= 0.5) "
        f"{_pct(one.get('listing', {}).get('box_recall@0.5'))}.",
        f"- Nine cross-image task families with two images (object_tracking needs three or more), before any "
        f"MIRG-RL training: task-mean acc@0.5 "
        f"{_pct(two.get('overall', {}).get('task_mean_acc@0.5'))}, image accuracy "
        f"{_pct(two.get('overall', {}).get('pooled_image_acc'))}.",
        "",
        "## Reproduce",
        "",
        "```",
        summary["command"],
        "```",
        "",
    ]
    path = folder / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
