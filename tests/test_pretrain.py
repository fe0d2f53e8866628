"""The embedded base: the dense vision stage, `pretrain-tiny` end to end, and `embedded` offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mirg.answer import check_strict
from mirg.cli import build_parser
from mirg.errors import MirgError
from mirg.tinybase.pretrain import OPTION_DEFAULTS, explicit_command, recorded_options, resolve_options
from mirg.models.registry import adapter_for, embedded_model_dir, resolve_model_path

# Offline: nothing may come from a model hub.
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def mirg(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirg", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def test_vision_stage_trains_the_tower_only_and_reports_heldout_scores(tmp_path):
    assert mirg("model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(tmp_path / "m")).returncode == 0
    assert mirg("data", "synth", "--out", str(tmp_path / "d"), "--samples", "300", "--tasks", "perception",
                "--min-images", "1", "--max-images", "1", "--image-size", "112").returncode == 0
    proc = mirg("model", "pretrain-vision", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d"),
                "--out", str(tmp_path / "v"), "--minutes", "0.05", "--batch-size", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "v" / "vision_stage.json").read_text())
    assert report["steps"] >= 1 and set(report["heldout"]) == {"objectness_acc", "outlined_acc", "color_acc", "shape_acc", "box_mean_iou"}
    before, after = load_file(str(tmp_path / "m" / "model.safetensors")), load_file(str(tmp_path / "v" / "model.safetensors"))
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all(".visual." in k for k in changed)  # the language model is untouched
    for flag, value in (("--batch-size", "0"), ("--learning-rate", "-1"), ("--learning-rate", "nan")):
        proc = mirg("model", "pretrain-vision", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d"),
                    "--out", str(tmp_path / "bad"), "--minutes", "0.05", flag, value)
        assert proc.returncode == 2 and f"{flag} must be positive" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "README.md").write_text("mine")
    proc = mirg("model", "pretrain-vision", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "d"),
                "--out", str(tmp_path / "mine"), "--minutes", "0.05")
    assert proc.returncode == 2 and "holds other files and none a run leaves (vision_stage.json)" in proc.stderr
    assert (tmp_path / "mine" / "README.md").read_text() == "mine"


def test_word_targets_score_colour_and_shape_against_the_word_embeddings():
    import torch

    from mirg.models.registry import adapter_for
    from mirg.tinybase.vision_pretrain import DenseHead, Vocab, number_table, word_table

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
    args = ("--minutes", "1", "--vision-minutes", "0.2", "--size", "xs", "--eval-samples", "12", "--lr-cooldown", "0.5",
            "--label-tokens-last", "--shares", "35,35,30",  # the last stage long enough to log a falling rate
            "--detail", "chain", "--order", "label")
    proc = mirg("model", "pretrain-tiny", "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["vision (dense head)", "one-object", "scenes", "several-images"]
    minutes = [s["minutes"] for s in summary["stages"]]
    assert minutes[0] == 0.2 and abs(sum(minutes[1:]) - 0.8) < 1e-9 and minutes[1] == minutes[2] > minutes[3]
    assert set(summary["metrics"]) == {"perception_one_image", "ten_families_two_images"}
    outputs = [row["stage_output"] for row in summary["selection"]]
    assert outputs == ["1_one-object", "2_scenes", "3_several-images"] and summary["selected"] in outputs
    best = max(row["validation_acc@0.5"] for row in summary["selection"])
    assert dict((r["stage_output"], r["validation_acc@0.5"]) for r in summary["selection"])[summary["selected"]] == best
    card = (out / "README.md").read_text()
    assert "## Held-out evaluation" in card
    # The card's command sets every option, and --like reads them back from the summary.
    assert f"mirg model pretrain-tiny --out {out} --minutes 1 --seed 0 --family qwen3_vl --size xs --label-tokens-last " \
           "--vision-minutes 0.2 --eval-samples 12 --detail chain --order label" in card
    assert recorded_options(out) == {**OPTION_DEFAULTS, "minutes": 1, "size": "xs", "vision_minutes": 0.2,
                                     "eval_samples": 12, "cooldown": 0.5, "label_tokens_last": True,
                                     "shares": "35,35,30", "detail": "chain", "order": "label"}
    # The labels are two words up to the last stage and one token each from there on, and the card says so.
    stages = out / "work" / "stages"
    for folder, count in ((stages / "2_scenes", 2), (stages / "2_scenes+label-tokens", 1), (stages / "3_several-images", 1),
                          (out, 1 if summary["selected"] == "3_several-images" else 2)):
        tokenizer = adapter_for(folder).load_processor(folder).tokenizer
        assert len(tokenizer.encode(" red circle", add_special_tokens=False)) == count, folder
    assert "(each colour-and-shape label one token from the last stage on, two words before)" in card
    # Every stage's lists are in label order, and the card says so.
    assert "objects listed alphabetically by label" in card
    rows = [json.loads(line) for line in (out / "work" / "traj" / "scenes" / "sft.jsonl").read_text().splitlines()]
    lists = [re.findall(r"[a-z]+ [a-z]+", text.split("Image 1: ", 1)[1].split(".", 1)[0])
             for text in (r["completion"][0]["content"][0]["text"] for r in rows)]
    assert all(labels == sorted(labels) for labels in lists) and any(len(labels) > 1 for labels in lists)
    # Only the last stage cools down, its learning rate falling to zero where it ends.
    assert [s.get("cooldown") for s in summary["stages"]] == [None, 0.0, 0.0, 0.5] and "--lr-cooldown 0.5" in card
    last = json.loads((out / "work" / "stages" / "3_several-images" / "trainer_state.json").read_text())
    rates = [h["learning_rate"] for h in last["log_history"] if "learning_rate" in h]
    assert len(rates) >= 2 and rates[-1] < rates[-2] < 1e-3, rates  # falling at the end (it stays at 1e-3 without)
    assert "falling linearly to zero over the last stage's final 50%" in card
    assert not any(s["resumed"] for s in summary["stages"]) and "total with data and evaluation" in card
    assert resolve_model_path(out) == out and (out / "model.safetensors").is_file()
    # Every image it is given is resized to the 112 px it was trained on, as the shipped base's.
    assert adapter_for(out).max_pixels == 112 * 112 == adapter_for(embedded_model_dir()).max_pixels
    assert "resizes any larger image down to 12,544 pixels" in card

    # Interrupted after training (no final model yet): a rerun trains nothing again and says so on the card;
    # told to keep the last stage's output this time, it does.
    steps = [s["steps"] for s in summary["stages"]]
    (out / "config.json").unlink()
    proc = mirg("model", "pretrain-tiny", "--out", str(out), *args, "--select", "last")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((out / "pretrain_summary.json").read_text())
    assert all(s["resumed"] for s in again["stages"]) and [s["steps"] for s in again["stages"]] == steps
    assert again["selected"] == "3_several-images" and again["metrics"]["perception_one_image"]["overall"]["model"].endswith(
        "3_several-images")
    card = (out / "README.md").read_text()
    assert "resumed an earlier run" in card and "the last stage (`--select last`" in card and "--select last" in card


def test_pretrain_takes_label_tokens_from_the_start_or_the_last_stage_not_both():
    assert resolve_options({"label_tokens_last": True})["label_tokens_last"] is True
    with pytest.raises(MirgError, match="exclude each other"):
        resolve_options({"label_tokens": True, "label_tokens_last": True})


def test_pretrain_refuses_a_folder_holding_a_model(tmp_path):
    assert mirg("model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(tmp_path / "m")).returncode == 0
    proc = mirg("model", "pretrain-tiny", "--out", str(tmp_path / "m"), "--minutes", "1")
    assert proc.returncode == 2 and "already holds a model" in proc.stderr and "Traceback" not in proc.stderr


def test_pretrain_refuses_a_folder_holding_other_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "README.md").write_text("mine")
    proc = mirg("model", "pretrain-tiny", "--out", str(tmp_path / "mine"), "--minutes", "1")
    assert proc.returncode == 2 and "none a run leaves (work, pretrain_summary.json)" in proc.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["README.md"]


def test_pretrain_like_takes_a_pretrain_tiny_model_only(tmp_path):
    assert mirg("model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(tmp_path / "m")).returncode == 0
    proc = mirg("model", "pretrain-tiny", "--out", str(tmp_path / "new"), "--like", str(tmp_path / "m"))
    assert proc.returncode == 2 and "--like takes a model made by `mirg model pretrain-tiny`" in proc.stderr
    (tmp_path / "m" / "pretrain_summary.json").write_text('{"plan": {}}')
    proc = mirg("model", "pretrain-tiny", "--out", str(tmp_path / "new"), "--like", str(tmp_path / "m"))
    assert proc.returncode == 2 and "not a pretrain-tiny summary (KeyError" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "new").exists()


def parsed(command: str) -> dict:
    """The options a `mirg ...` command line sets, as the CLI parses them (None where not given)."""
    args = vars(build_parser().parse_args(command.split()[1:]))
    return {k: v for k, v in args.items() if k != "func"}


def test_pretrain_like_embedded_rebuilds_the_shipped_base_unless_told_otherwise(tmp_path):
    shipped = json.loads((embedded_model_dir() / "pretrain_summary.json").read_text())
    options = resolve_options({"minutes": 90, "seed": None, "detail": "list"}, embedded_model_dir())
    assert options == {**recorded_options(embedded_model_dir()), "minutes": 90, "detail": "list"}
    summary = {**shipped, "plan": {**shipped["plan"], "vision_minutes": 12.0}}
    (tmp_path / "pretrain_summary.json").write_text(json.dumps(summary))
    with pytest.raises(MirgError, match=r"got 12.0 \(from --like"):  # a --like model's vision stage, too long now
        resolve_options({"minutes": 10}, tmp_path)
    assert resolve_options({"minutes": 10, "vision_minutes": 2}, tmp_path)["vision_minutes"] == 2
    explicit = parsed(explicit_command(Path(shipped["plan"]["out"]), recorded_options(embedded_model_dir())))
    typed = parsed(shipped["command"])
    like, _ = typed.pop("like"), explicit.pop("like")
    assert {k: v for k, v in explicit.items() if typed[k] is not None} == {k: v for k, v in typed.items() if v is not None}
    if like is None:  # what the typed command left to the defaults (with --like, the like-model's options fill it)
        assert {k: v for k, v in explicit.items() if typed[k] is None} == {
            k: None if OPTION_DEFAULTS.get(k) is False else OPTION_DEFAULTS.get(k) for k, v in typed.items() if v is None}
    with pytest.raises(MirgError, match="--vision-minutes must be above 0 and below --minutes"):
        resolve_options({"minutes": 2, "vision_minutes": 3})


@pytest.mark.parametrize("minutes", ["0", "1", "2"])
def test_pretrain_refuses_vision_minutes_outside_the_total(tmp_path, minutes):
    proc = mirg("model", "pretrain-tiny", "--out", str(tmp_path / "m"), "--minutes", "1", "--vision-minutes", minutes)
    assert proc.returncode == 2 and "--vision-minutes must be above 0 and below --minutes" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m").exists()


@pytest.mark.parametrize("flags, reason", [(["--seed", "-3"], "--seed must be 0 or more, got -3"),
                                           (["--lm-layers", "0"], "--lm-layers must be between 1 and 32, got 0"),
                                           (["--rope-theta", "-1"], "--rope-theta must be positive, got -1.0")])
def test_pretrain_refuses_a_bad_seed_or_model_shape_before_any_stage(tmp_path, flags, reason):
    proc = mirg("model", "pretrain-tiny", "--out", str(tmp_path / "m"), "--minutes", "1", *flags)
    assert proc.returncode == 2 and reason in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "m").exists()


def test_embedded_resolves_and_loads_offline():
    folder = resolve_model_path("embedded")
    assert folder == embedded_model_dir() and (folder / "README.md").is_file()
    assert (folder / "model.safetensors").stat().st_size < 25 * 2**20


def test_embedded_sees_images_larger_than_it_was_trained_on(tmp_path):
    # 224-px images (the generator's default) at 4x the patches it learnt positions for found 4% of the objects
    # before its processor was capped at the 112 px it was trained on; capped: 97.5% on 200 samples.
    assert mirg("data", "synth", "--out", str(tmp_path / "d"), "--samples", "48", "--seed", "11", "--tasks", "perception",
                "--min-images", "1", "--max-images", "1", "--image-size", "224").returncode == 0
    proc = mirg("eval", "--model", "embedded", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"),
                "--batch-size", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["overall"]["pooled_acc@0.5"] >= 0.80


def test_embedded_answers_a_perception_sample_in_the_strict_format(tmp_path):
    assert mirg("data", "synth", "--out", str(tmp_path / "d"), "--samples", "4", "--seed", "3", "--tasks", "perception",
                "--min-images", "1", "--max-images", "1", "--image-size", "112").returncode == 0
    proc = mirg("eval", "--model", "embedded", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "r"),
                "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "r" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        check_strict(row["response"], 1)  # raises with the reason if not strict
