"""The embedded base: the dense vision stage, `pretrain-tiny` end to end, and `embedded` offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from mirg.answer import check_strict
from mirg.models.registry import embedded_model_dir, resolve_model_path

# Offline: nothing may come from a model hub.
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def mirg(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirg", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def test_vision_stage_trains_the_tower_only_and_reports_heldout_scores(tmp_path):
    assert mirg("model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(tmp_path / "m")).returncode == 0
    assert mirg("data", "synth", "--out", str(tmp_path / "d"), "--n", "300", "--tasks", "perception",
                "--min-images", "1", "--max-images", "1", "--image-size", "112").returncode == 0
    proc = mirg("model", "pretrain-vision", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d"),
                "--out", str(tmp_path / "v"), "--minutes", "0.05", "--batch-size", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "vision_stage.json").read_text())
    assert report["steps"] >= 1 and set(report["heldout"]) == {"objectness_acc", "outlined_acc", "color_acc", "shape_acc", "box_mean_iou"}
    before, after = load_file(str(tmp_path / "m" / "model.safetensors")), load_file(str(tmp_path / "v" / "model.safetensors"))
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all(".visual." in k for k in changed)  # the language model is untouched


def test_word_targets_score_colour_and_shape_against_the_word_embeddings():
    import torch

    from mirg.models.registry import adapter_for
    from mirg.models.vision_pretrain import DenseHead, Vocab, number_table, word_table

    folder = embedded_model_dir()
    adapter = adapter_for(folder)
    model, tokenizer = adapter.load_model(folder), adapter.load_processor(folder).tokenizer
    assert word_table(model, tokenizer, ["red", "zzqxv"]) is None  # not one token: refused, not guessed
    vocab = Vocab(("blue", "red"), ("circle", "star"))
    words = word_table(model, tokenizer, vocab.colors + vocab.shapes)
    assert words.shape == (4, model.config.get_text_config().hidden_size)
    hidden = words.shape[1]
    head = DenseHead(hidden, vocab, number_table(model, tokenizer), words)
    feats = torch.randn(3, 5, hidden)
    logits, coords = head(feats)
    assert logits.shape == (15, 6) and coords.shape == (15, 4, 1001)
    out = head.linear(feats.reshape(-1, hidden))
    assert torch.allclose(logits[:, 2:4], out[:, 2 : 2 + hidden] @ words[:2].T, atol=1e-5)


def test_pretrain_tiny_runs_end_to_end(tmp_path):
    out = tmp_path / "base"
    proc = mirg("model", "pretrain-tiny", "--out", str(out), "--minutes", "1", "--size", "xs", "--eval-samples", "12")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["vision (dense head)", "one-object", "scenes", "several-images"]
    assert set(summary["metrics"]) == {"perception_one_image", "ten_families_two_images"}
    outputs = [row["stage_output"] for row in summary["selection"]]
    assert outputs == ["1_one-object", "2_scenes", "3_several-images"] and summary["selected"] in outputs
    best = max(row["validation_acc@0.5"] for row in summary["selection"])
    assert dict((r["stage_output"], r["validation_acc@0.5"]) for r in summary["selection"])[summary["selected"]] == best
    card = (out / "README.md").read_text()
    assert "mirg model pretrain-tiny --out" in card and "## Held-out evaluation" in card
    assert not any(s["resumed"] for s in summary["stages"]) and "total with data and evaluation" in card
    assert resolve_model_path(out) == out and (out / "model.safetensors").is_file()

    # Interrupted after training (no final model yet): a rerun trains nothing again and says so on the card.
    steps = [s["steps"] for s in summary["stages"]]
    (out / "config.json").unlink()
    proc = mirg("model", "pretrain-tiny", "--out", str(out), "--minutes", "1", "--size", "xs", "--eval-samples", "12")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((out / "pretrain_summary.json").read_text())
    assert all(s["resumed"] for s in again["stages"]) and [s["steps"] for s in again["stages"]] == steps
    assert "resumed an earlier run" in (out / "README.md").read_text()


def test_pretrain_refuses_a_folder_holding_a_model(tmp_path):
    assert mirg("model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(tmp_path / "m")).returncode == 0
    proc = mirg("model", "pretrain-tiny", "--out", str(tmp_path / "m"), "--minutes", "1")
    assert proc.returncode == 2 and "already holds a model" in proc.stderr and "Traceback" not in proc.stderr


def test_embedded_resolves_and_loads_offline():
    folder = resolve_model_path("embedded")
    assert folder == embedded_model_dir() and (folder / "README.md").is_file()
    assert (folder / "model.safetensors").stat().st_size < 25 * 2**20


def test_embedded_answers_a_perception_sample_in_the_strict_format(tmp_path):
    assert mirg("data", "synth", "--out", str(tmp_path / "d"), "--n", "4", "--seed", "3", "--tasks", "perception",
                "--min-images", "1", "--max-images", "1", "--image-size", "112").returncode == 0
    proc = mirg("eval", "--model", "embedded", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"),
                "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "r" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        check_strict(row["response"], 1)  # raises with the reason if not strict
