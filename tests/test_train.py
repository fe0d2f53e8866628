"""`mirg sft` and `mirg grpo` on a real tiny model and real files: training, logging, saving, resuming,
two processes under accelerate, a dry run of every recipe, and one-line errors before training starts."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mirg.cli import main
from mirg.errors import MirgError
from train_fixtures import write_trajectories

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*/*.yaml"))
STAGE_RECIPES = [r for r in RECIPES if r.stem in ("sft", "grpo")]
ACCELERATE_CONFIGS = [r for r in RECIPES if r.parent.name == "accelerate"]
QUIET = ["--report_to", "none", "--disable_tqdm", "true"]
TINY_MAX_PIXELS = "50176"

pytestmark = pytest.mark.slow


# -- fixtures: a tiny model, trajectories from the real data pipeline, a briefly trained model ----------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "qwen2_5_vl"
    assert main(["model", "init-tiny", "--family", "qwen2_5_vl", "--out", str(out), "--size", "s"]) == 0
    return out


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory) -> Path:
    """`mirg data synth` (2-4 images of 112 px) then `mirg data trajectories` in Qwen2.5-VL's resized pixels."""
    root = tmp_path_factory.mktemp("data")
    assert main(["data", "synth", "--out", str(root / "synth"), "--samples", "16", "--image-size", "112",
                 "--min-images", "2", "--max-images", "4"]) == 0
    assert main(["data", "trajectories", "--data", str(root / "synth"), "--out", str(root / "traj"),
                 "--coords", "resized", "--max-pixels", TINY_MAX_PIXELS]) == 0
    return root / "traj"


@pytest.fixture(scope="module")
def chain_trajectories(tmp_path_factory) -> Path:
    """The same kind of samples as ``trajectories`` written as chains (`--detail chain`: the target named in a
    sentence of its own, ``The target is the X in image k.``)."""
    root = tmp_path_factory.mktemp("chain")
    assert main(["data", "synth", "--out", str(root / "synth"), "--samples", "8", "--image-size", "112"]) == 0
    assert main(["data", "trajectories", "--data", str(root / "synth"), "--out", str(root / "traj"),
                 "--coords", "resized", "--max-pixels", TINY_MAX_PIXELS, "--detail", "chain"]) == 0
    return root / "traj"


@pytest.fixture(scope="module")
def short_trajectories(tmp_path_factory) -> Path:
    """Short answers (2-3 images each), so that a few SFT steps teach the format and GRPO rewards vary."""
    return write_trajectories(tmp_path_factory.mktemp("short") / "traj", n=16, images_per_prompt=(2, 3),
                              coords="resized", max_pixels=int(TINY_MAX_PIXELS))


@pytest.fixture(scope="module")
def sft_run(tiny, trajectories, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft") / "run"
    assert sft(tiny, trajectories, out, "--max_steps", "4", "--save_steps", "2", "--report_to", "tensorboard") == 0
    return out


@pytest.fixture(scope="module")
def warm_model(tiny, short_trajectories, tmp_path_factory) -> Path:
    """40 SFT steps: enough for the tiny model to write the answer format some of the time."""
    out = tmp_path_factory.mktemp("warm") / "run"
    assert sft(tiny, short_trajectories, out, "--max_steps", "40", "--learning_rate", "3e-3",
               "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--save_strategy", "no",
               "--logging_steps", "10", *QUIET) == 0
    return out


def sft(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["sft", "--model", str(model), "--data", str(data), "--output_dir", str(out),
                 "--logging_steps", "1", *extra])


def grpo(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["grpo", "--model", str(model), "--data", str(data), "--output_dir", str(out),
                 "--logging_steps", "1", "--max_completion_length", "48", *extra])


def weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def changed(before: dict, after: dict, prefix: str = "") -> bool:
    """Whether any saved tensor under ``prefix`` differs (saved folders use the hub layout: ``visual.``,
    ``model.layers.``)."""
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, f"no weights under {prefix!r}"
    return any((before[k] != after[k]).any() for k in keys)


def state(folder: Path) -> dict:
    return json.loads((folder / "trainer_state.json").read_text())


def reloads(folder: Path) -> None:
    from mirg.models import adapter_for

    adapter = adapter_for(folder)
    assert adapter.load_processor(folder).chat_template
    assert adapter.load_model(folder) is not None


# -- SFT --------------------------------------------------------------------------------------------


def test_sft_trains_logs_and_saves_model_processor_and_state(sft_run, tiny):
    assert changed(weights(tiny), weights(sft_run))
    history = state(sft_run)["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    assert all(h["loss"] > 0 for h in history if "loss" in h)
    assert list((sft_run / "runs").rglob("events.out.tfevents.*")), "no TensorBoard log"
    for name in ("chat_template.jinja", "processor_config.json", "tokenizer.json", "config.json"):
        assert (sft_run / name).is_file(), name
    reloads(sft_run)
    reloads(sft_run / "checkpoint-2")


def test_sft_resume_continues_the_step_count(sft_run, tiny, trajectories, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(sft_run, run)
    assert sft(tiny, trajectories, run, "--max_steps", "6", "--save_steps", "2", "--resume", *QUIET) == 0
    history = state(run)
    assert history["global_step"] == 6
    assert [h["step"] for h in history["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert (run / "checkpoint-6").is_dir()


def test_sft_stops_at_the_wall_clock_budget_and_still_saves(tiny, trajectories, tmp_path, capfd):
    out = tmp_path / "budget"
    assert sft(tiny, trajectories, out, "--max_steps", "500", "--max_minutes", "0.0001", "--report_to", "none",
               "--logging_steps", "1") == 0
    assert state(out)["global_step"] == 1  # the budget is checked after every step
    reloads(out)
    captured = capfd.readouterr()
    assert "sft (0.0001 min budget)" in captured.err and "/500" not in captured.err  # a bar against the clock
    assert "'loss'" not in captured.out + captured.err  # one compact line, not the logs' dictionaries
    assert [h["step"] for h in state(out)["log_history"] if "loss" in h] == [1]  # which stay in the run folder


def logged_rates(folder: Path) -> list[float]:
    return [h["learning_rate"] for h in state(folder)["log_history"] if "learning_rate" in h]


def test_sft_cooldown_by_steps_takes_the_rate_linearly_to_zero(tiny, trajectories, tmp_path):
    out = tmp_path / "cool"
    assert sft(tiny, trajectories, out, "--max_steps", "8", "--lr_cooldown", "0.5", "--learning_rate", "1e-3",
               "--lr_scheduler_type", "constant", *QUIET) == 0
    # the rate each step trained with: constant for the first half, then falling by a quarter a step
    assert logged_rates(out) == pytest.approx([1e-3] * 5 + [7.5e-4, 5e-4, 2.5e-4])


def test_sft_cooldown_under_a_time_budget_is_repeated_by_its_step_count(tiny, trajectories, tmp_path, monkeypatch):
    import itertools

    import mirg.train.common

    ticks = itertools.count()  # a clock one second further at every look: the same pace whatever the machine's load
    monkeypatch.setattr(mirg.train.common, "monotonic", lambda: float(next(ticks)))
    timed, stepped = tmp_path / "timed", tmp_path / "stepped"
    assert sft(tiny, trajectories, timed, "--max_steps", "100000", "--max_minutes", "0.25", "--lr_cooldown", "0.5",
               "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", *QUIET) == 0
    rates, steps = logged_rates(timed), state(timed)["global_step"]
    start = rates.index(next(r for r in rates if r < 1e-3)) - 1  # the step the cool-down began after
    # half of the 15 s is left after step 8 (at 8 s): the pace predicts 16 steps, and the run ends there
    assert (start, steps) == (8, 16) and steps == round(start / 0.5)
    assert rates[-1] == pytest.approx(1e-3 / (steps - start))
    assert sft(tiny, trajectories, stepped, "--max_steps", str(steps), "--lr_cooldown", "0.5", "--learning_rate",
               "1e-3", "--lr_scheduler_type", "constant", *QUIET) == 0
    assert logged_rates(stepped) == rates
    a, b = load_file(timed / "model.safetensors"), load_file(stepped / "model.safetensors")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_sft_cooldown_outside_zero_to_one_is_refused(tiny, trajectories, tmp_path, capsys):
    assert sft(tiny, trajectories, tmp_path / "o", "--max_steps", "2", "--lr_cooldown", "1", *QUIET) == 2
    assert "--lr-cooldown is a fraction" in capsys.readouterr().err
    assert sft(tiny, trajectories, tmp_path / "o", "--max_steps", "2", "--lr_cooldown", "0.5", "--lr_scheduler_type",
               "reduce_lr_on_plateau", "--eval_strategy", "steps", "--eval_steps", "1", *QUIET) == 2
    assert "reduce_lr_on_plateau is not one" in capsys.readouterr().err


def test_sft_loss_is_on_the_assistant_turn_only(tiny, trajectories, tmp_path):
    from mirg.train.common import prepare_run
    from mirg.train.config import SFTArguments, parse_arguments
    from mirg.train.sft import build_sft_trainer

    args = parse_arguments(SFTArguments, ["--model", str(tiny), "--data", str(trajectories), "--output_dir",
                                          str(tmp_path / "o"), "--per_device_train_batch_size", "4", *QUIET], "sft")
    setup = prepare_run(args, "sft")
    trainer = build_sft_trainer(args, setup)
    records = [json.loads(line) for line in (trajectories / "sft.jsonl").read_text().splitlines()]
    completions = {r["completion"][0]["content"][0]["text"] + "<|im_end|>\n" for r in records}
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = setup.processor.tokenizer
    image_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((batch["input_ids"] == image_id).sum()) > 0
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        trained = ids[labels != -100]
        assert tokenizer.decode(trained) in completions
        assert int((trained == image_id).sum()) == 0


def test_sft_completion_only_loss_equals_trls_loss_and_gradients(tiny, trajectories, tmp_path):
    """On a CPU the loss projects only the completion positions; it must be TRL's loss (and gradient) exactly."""
    import torch
    from trl import SFTTrainer

    from mirg.train.common import prepare_run
    from mirg.train.config import SFTArguments, parse_arguments
    from mirg.train.sft import build_sft_trainer

    args = parse_arguments(SFTArguments, ["--model", str(tiny), "--data", str(trajectories), "--output_dir",
                                          str(tmp_path / "o"), "--per_device_train_batch_size", "4", *QUIET], "sft")
    trainer = build_sft_trainer(args, prepare_run(args, "sft"))
    assert type(trainer).__name__ == "CompletionLossSFTTrainer"
    model = trainer.model.train()
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    assert trainer._completion_only(model, batch)
    results = []
    for compute in (trainer.compute_loss, lambda m, b: SFTTrainer.compute_loss(trainer, m, b)):
        model.zero_grad()
        loss = compute(model, batch)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (ours, ours_grads), (trl, trl_grads) = results
    assert torch.allclose(ours, trl, rtol=1e-5), (ours, trl)
    assert len(ours_grads) == len(trl_grads) > 0
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(ours_grads, trl_grads))
    logged = trainer._metrics["train"]
    assert len(logged["entropy"]) == len(logged["mean_token_accuracy"]) == 2  # the same metrics as TRL's, both times


def test_sft_decision_weight_multiplies_the_loss_of_the_decision_sentence_only(tiny, chain_trajectories, tmp_path):
    """``--decision_weight W``: the tokens after the prefix up to the full stop count W times, every other completion
    token once, over the same token count; the weighted tokens are exactly the decision's (label and image)."""
    import re

    import torch
    import torch.nn.functional as F

    from mirg.train.common import prepare_run
    from mirg.train.config import SFTArguments, parse_arguments
    from mirg.train.sft import build_sft_trainer, decision_mask

    args = parse_arguments(SFTArguments, ["--model", str(tiny), "--data", str(chain_trajectories), "--output_dir",
                                          str(tmp_path / "o"), "--per_device_train_batch_size", "4",
                                          "--decision_weight", "3", *QUIET], "sft")
    setup = prepare_run(args, "sft")
    trainer = build_sft_trainer(args, setup)
    model = trainer.model.train()
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    tokenizer = setup.processor.tokenizer
    labels = batch["labels"][:, 1:]
    decision = decision_mask(labels, *trainer._decision_ids())
    for row_labels, row_decision in zip(labels, decision):
        completion = tokenizer.decode(row_labels[row_labels != -100])
        label, image = re.search(r"The target is the (.+?) in image (\d+)\.", completion).groups()
        assert tokenizer.decode(row_labels[row_decision]) == f" {label} in image {image}."
    with torch.no_grad():
        ours = trainer.compute_loss(model, batch)
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
        mask = labels != -100
        nll = F.cross_entropy(logits[mask].float(), labels[mask], reduction="none")
        expected = (nll.sum() + 2 * nll[decision[mask]].sum()) / mask.sum()
    assert torch.allclose(ours, expected, rtol=1e-5), (ours, expected)
    assert trainer._metrics["train"]["decision_tokens"] == [float(decision.sum())]


@pytest.mark.parametrize("flags, reason", [
    (["--decision_weight", "0"], "--decision-weight must be a positive number, got 0.0"),
    (["--decision_weight", "2", "--decision_prefix", "The target is the"],
     "no completion holds --decision-prefix 'The target is the'"),
    (["--decision_weight", "2", "--use_lora", "true"], "does not combine with --use-lora"),
])
def test_sft_decision_weight_refusals(tiny, trajectories, tmp_path, capsys, flags, reason):
    code = sft(tiny, trajectories, tmp_path / "o", *flags)
    assert reason in one_line_error(capsys, code, tmp_path / "o")


def test_sft_length_column_is_each_records_collated_length(tiny, trajectories, tmp_path):
    """`group_by_length` sorts by a length the records do not carry: it must be the length the collator makes."""
    from dataclasses import replace

    from mirg.train.common import prepare_run
    from mirg.train.config import SFTArguments, parse_arguments
    from mirg.train.sft import add_length_column, build_sft_trainer

    args = parse_arguments(SFTArguments, ["--model", str(tiny), "--data", str(trajectories), "--output_dir",
                                          str(tmp_path / "o"), "--train_sampling_strategy", "group_by_length",
                                          *QUIET], "sft")
    setup = prepare_run(args, "sft")
    dataset = add_length_column(setup.dataset, [s.total for s in setup.tokens])
    trainer = build_sft_trainer(args, replace(setup, dataset=dataset))
    lengths = dataset.with_format(None)["length"]
    assert len(set(lengths)) > 1  # 2-4 images and answers of different lengths
    for i, length in enumerate(lengths):
        batch = trainer.data_collator([dataset[i]])
        assert int(batch["attention_mask"].sum()) == length
    assert add_length_column(dataset.remove_columns("length").add_column("length", [7] * len(dataset)),
                             lengths).with_format(None)["length"] == [7] * len(dataset)  # its own is kept
    with pytest.raises(MirgError, match="record 2: 'length' must be a non-negative whole number"):
        add_length_column(dataset.remove_columns("length").add_column("length", [7, -1] + [7] * (len(dataset) - 2)),
                          lengths)


def test_sft_groups_batches_by_length(tiny, trajectories, tmp_path):
    out = tmp_path / "grouped"
    assert sft(tiny, trajectories, out, "--max_steps", "2", "--per_device_train_batch_size", "4",
               "--train_sampling_strategy", "group_by_length", "--save_strategy", "no", *QUIET) == 0
    assert state(out)["global_step"] == 2


def test_sft_freeze_vision_keeps_the_vision_tower(tiny, trajectories, tmp_path):
    out = tmp_path / "frozen"
    assert sft(tiny, trajectories, out, "--max_steps", "2", "--save_strategy", "no", "--freeze_vision", *QUIET) == 0
    before, after = weights(tiny), weights(out)
    assert not changed(before, after, "visual.")
    assert changed(before, after, "model.layers.")


def test_sft_with_lora_saves_the_adapter_and_a_merged_model(tiny, trajectories, tmp_path):
    out = tmp_path / "lora"
    assert sft(tiny, trajectories, out, "--max_steps", "2", "--save_strategy", "no", "--use_lora",
               "--lora_target_modules", "q_proj,v_proj", "--learning_rate", "1e-2", *QUIET) == 0
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = weights(out)
    assert not any("lora" in k for k in merged)
    assert changed(weights(tiny), merged, "model.layers.")
    assert not changed(weights(tiny), merged, "visual.")
    reloads(out)


# -- GRPO -------------------------------------------------------------------------------------------


def test_grpo_trains_logs_each_reward_and_resumes(warm_model, short_trajectories, tmp_path):
    out = tmp_path / "grpo"
    assert grpo(warm_model, short_trajectories, out, "--max_steps", "3", "--save_steps", "3", "--beta", "0.04",
                "--per_device_train_batch_size", "8", "--num_generations", "4", *QUIET) == 0
    assert changed(weights(warm_model), weights(out))
    steps = [h for h in state(out)["log_history"] if "reward" in h]
    assert len(steps) == 3
    for name in ("format_reward", "image_reward", "object_reward"):
        assert all(f"rewards/{name}/mean" in h and f"rewards/{name}/std" in h for h in steps), name
    assert all("kl" in h for h in steps)
    assert any(h["rewards/format_reward/mean"] > 0 for h in steps), "warm model never wrote the format"
    reloads(out / "checkpoint-3")
    assert grpo(warm_model, short_trajectories, out, "--max_steps", "4", "--save_steps", "3", "--beta", "0.04",
                "--resume", *QUIET) == 0
    assert state(out)["global_step"] == 4


def unpadded_completion_logps(model, inputs: dict, row: int, image_start: int, patch_start: int):
    """One sample's completion log-probabilities from a forward pass of that sample alone, without padding, its
    own images only; returns them with the next sample's first image and first patch row."""
    import torch

    prompt = inputs["prompt_ids"][row][inputs["prompt_mask"][row].bool()]
    completion = inputs["completion_ids"][row][inputs["completion_mask"][row].bool()]
    ids = torch.cat([prompt, completion]).unsqueeze(0)
    grids = inputs["image_grid_thw"][image_start:image_start + inputs["num_images"][row]]
    patches = int(grids.prod(-1).sum())
    extra = {"pixel_values": inputs["pixel_values"][patch_start:patch_start + patches], "image_grid_thw": grids}
    if inputs.get("mm_token_type_ids") is not None:
        kept = torch.cat([inputs["prompt_mask"][row], inputs["completion_mask"][row]]).bool()
        extra["mm_token_type_ids"] = inputs["mm_token_type_ids"][row][kept].unsqueeze(0)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0].float()
    logps = torch.log_softmax(logits[len(prompt) - 1:-1], -1).gather(1, completion.unsqueeze(1)).squeeze(1)
    return logps, image_start + len(grids), patch_start + patches


def test_grpo_scores_each_completion_as_the_sample_alone_would(warm_model, short_trajectories, tmp_path):
    """The policy gradient is only right if GRPO's loss forward — prompts of different lengths left-padded
    into one batch, 2-3 images each, patches concatenated — gives every sampled token the log-probability
    that sample's own prompt and images give it. A misaligned image or padding offset would train the policy
    on a conditional other than the one it sampled from, and no reward curve would show it."""
    import torch

    from mirg.train.common import prepare_run
    from mirg.train.config import GRPOArguments, parse_arguments
    from mirg.train.grpo import build_grpo_trainer

    args = parse_arguments(GRPOArguments, [
        "--model", str(warm_model), "--data", str(short_trajectories), "--output_dir", str(tmp_path / "o"),
        "--max_steps", "3", "--per_device_train_batch_size", "8", "--num_generations", "4",
        "--max_completion_length", "48", "--save_strategy", "no", *QUIET], "grpo")
    trainer = build_grpo_trainer(args, prepare_run(args, "grpo"))
    loss_of = trainer._compute_loss
    batches = []

    def checked(model, inputs):
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        keys = ("pixel_values", "image_grid_thw", "num_images", "mm_token_type_ids")
        with torch.no_grad():
            batched, _, _ = trainer._get_per_token_logps_and_entropies(
                model, ids, mask, inputs["completion_ids"].size(1), **{k: inputs.get(k) for k in keys})
            image, patch, worst = 0, 0, 0.0
            for row in range(ids.size(0)):
                alone, image, patch = unpadded_completion_logps(model, inputs, row, image, patch)
                got = batched[row][inputs["completion_mask"][row].bool()]
                worst = max(worst, (alone - got).abs().max().item())
        batches.append((list(inputs["num_images"]), int(inputs["prompt_mask"].sum(1).unique().numel()), worst))
        return loss_of(model, inputs)

    trainer._compute_loss = checked
    trainer.train()
    assert len(batches) == 3
    assert any(len(set(counts)) > 1 and lengths > 1 for counts, lengths, _ in batches), \
        f"no batch mixed image counts and prompt lengths, so padding went untested: {batches}"
    assert max(worst for _, _, worst in batches) < 1e-4, batches


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_grpo_under_accelerate_with_two_processes(warm_model, short_trajectories, tmp_path):
    """Two real CPU processes (gloo). accelerate 1.15's ``--cpu`` launcher starts only one process whatever
    ``--num_processes`` says (several CPU processes need mpirun), so the processes are started by its
    torchrun launcher and ``ACCELERATE_USE_CPU`` keeps them on the CPU. 2 processes x 2 completions make one
    group of 4: with one process this batch size is refused, so passing proves both processes ran."""
    out = tmp_path / "grpo2"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()),
               "-m", "mirg", "grpo", "--model", str(warm_model), "--data", str(short_trajectories),
               "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2",
               "--num_generations", "4", "--max_completion_length", "48", "--logging_steps", "1",
               "--save_strategy", "no", *QUIET]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved the final model") == 1  # reported once, by the main process
    run_state = state(out)
    assert run_state["global_step"] == 2
    assert all("rewards/object_reward/mean" in h for h in run_state["log_history"] if "reward" in h)
    reloads(out)
    alone = main(["grpo", "--model", str(warm_model), "--data", str(short_trajectories), "--output_dir",
                  str(tmp_path / "alone"), "--per_device_train_batch_size", "2", "--num_generations", "4",
                  "--dry-run"])
    assert alone == 2


# -- recipes and dry runs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage_one(tiny, tmp_path_factory) -> Path:
    """The tiny model with its processor saved at the GPU recipes' pixel limits, as `mirg sft` saves its output at
    its run's: what their GRPO recipes start from (colocated vLLM resizes images with the folder's processor)."""
    from mirg.models import adapter_for

    out = tmp_path_factory.mktemp("stage1") / "model"
    shutil.copytree(tiny, out)
    adapter_for(tiny).load_processor(tiny, max_pixels=401408).save_pretrained(str(out))
    return out


@pytest.mark.parametrize("recipe", STAGE_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recipe_dry_runs(recipe, tiny, stage_one, trajectories, tmp_path, capsys):
    """Each recipe on trajectories written for it (`--for-model --config`: the recipe's pixel limits)."""
    data, out = tmp_path / "traj", tmp_path / "out"
    assert main(["data", "trajectories", "--data", str(trajectories.parent / "synth"), "--out", str(data),
                 "--for-model", str(tiny), "--config", str(recipe)]) == 0
    gpu = "qwen2.5-vl" in recipe.parent.name
    model = stage_one if gpu and recipe.stem == "grpo" else tiny
    capsys.readouterr()
    code = main([recipe.stem, "--config", str(recipe), "--model", str(model), "--data", str(data),
                 "--output_dir", str(out), "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads(printed[printed.index("{"):])
    assert report["family"] == "qwen2_5_vl" and report["records"] == 16
    assert report["token_budget"]["samples"] == 16 and report["token_budget"]["over_limits"] == 0
    assert not out.exists()
    if gpu:
        assert report["max_pixels"] == 401408
        assert any("GPU" in need for need in report["needs_at_run_time"])
        if recipe.stem == "grpo":
            assert any("vLLM" in need for need in report["needs_at_run_time"])
            assert report["vllm"]["max_images"] == 6 and report["vllm"]["max_model_length"] == 5120


def test_default_recipe_is_tiny_cpu_and_flags_override_it(tiny, trajectories, tmp_path):
    from mirg.train.config import GRPOArguments, parse_arguments

    args = parse_arguments(GRPOArguments, ["--model", str(tiny), "--data", str(trajectories), "--output_dir",
                                           str(tmp_path), "--learning_rate", "3e-5", "--rewards", "format,object",
                                           "--reward_weights=1,0.5", "--object_reward_mode", "iou@0.5",
                                           "--loss_type", "dr_grpo", "--beta", "0.1", "--temperature", "0.7",
                                           "--use_vllm", "--vllm_mode", "server"], "grpo")
    assert args.learning_rate == 3e-5  # the flag beats the recipe's 5e-5
    assert args.num_generations == 4 and args.max_completion_length == 256  # from recipes/tiny-cpu/grpo.yaml
    assert args.rewards == ["format", "object"] and args.reward_weights == [1.0, 0.5]
    assert (args.object_reward_mode, args.loss_type, args.beta, args.temperature) == ("iou@0.5", "dr_grpo", 0.1, 0.7)
    assert args.use_vllm and args.vllm_mode == "server"


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_configs_load(config):
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(config))
    assert loaded.mixed_precision == "bf16" and loaded.num_processes >= 1


def test_recipe_set_is_complete():
    names = {f"{r.parent.name}/{r.name}" for r in RECIPES}
    for model in ("tiny-cpu", "qwen2.5-vl-3b", "qwen2.5-vl-7b"):
        assert {f"{model}/sft.yaml", f"{model}/grpo.yaml"} <= names
    assert {"accelerate/ddp.yaml", "accelerate/zero2.yaml", "accelerate/zero3.yaml", "accelerate/fsdp.yaml"} <= names


# -- one clear message before any training starts ---------------------------------------------------


def one_line_error(capsys, code: int, out: Path) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mirg: error: ") and err.count("\n") == 1, err
    assert not out.exists(), "something was written before the error"
    return err


def test_wrong_recipe_key(tiny, trajectories, tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("learning_rate: 1.0e-3\nnum_train_epoch: 2\n")
    code = main(["sft", "--config", str(recipe), "--model", str(tiny), "--data", str(trajectories),
                 "--output_dir", str(tmp_path / "o")])
    err = one_line_error(capsys, code, tmp_path / "o")
    assert "unknown key 'num_train_epoch'" in err and "num_train_epochs" in err


def test_wrong_flag(tiny, trajectories, tmp_path, capsys):
    code = sft(tiny, trajectories, tmp_path / "o", "--lerning_rate", "1e-3")
    assert "unknown option --lerning_rate (did you mean --learning_rate?)" in one_line_error(capsys, code, tmp_path / "o")


def test_missing_data_column(tiny, trajectories, tmp_path, capsys):
    shutil.copytree(trajectories.parent, tmp_path / "data")  # images live beside the trajectories
    data = tmp_path / "data" / trajectories.name
    lines = (data / "rl.jsonl").read_text().splitlines()
    broken = json.loads(lines[2])
    del broken["target_box"]
    lines[2] = json.dumps(broken)
    (data / "rl.jsonl").write_text("\n".join(lines) + "\n")
    code = grpo(tiny, data, tmp_path / "o")
    err = one_line_error(capsys, code, tmp_path / "o")
    assert f"{data / 'rl.jsonl'}:3: missing column 'target_box'" in err


def test_missing_image_file(tiny, short_trajectories, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(short_trajectories, data)
    first = json.loads((data / "sft.jsonl").read_text().splitlines()[0])
    (data / first["images"][0]).unlink()
    code = sft(tiny, data, tmp_path / "o")
    assert f"image {first['images'][0]} not found" in one_line_error(capsys, code, tmp_path / "o")


def test_batch_not_a_multiple_of_generations(tiny, trajectories, tmp_path, capsys):
    code = grpo(tiny, trajectories, tmp_path / "o", "--per_device_train_batch_size", "6", "--num_generations", "4")
    err = one_line_error(capsys, code, tmp_path / "o")
    assert "not a multiple of num_generations (4)" in err and "per_device_train_batch_size (6)" in err


@pytest.mark.parametrize("stage, flags, reason", [
    ("sft", ["--learning_rate", "-0.001"], "--learning_rate must be at least 0, got -0.001"),
    ("sft", ["--learning_rate", "nan"], "--learning_rate must be at least 0, got nan"),
    ("sft", ["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1, got 0"),
    ("grpo", ["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1, got 0"),
    ("grpo", ["--max_completion_length", "0"], "--max_completion_length must be at least 1, got 0"),
    ("grpo", ["--beta", "-0.1"], "--beta must be at least 0, got -0.1"),
    ("grpo", ["--temperature", "0"], "--temperature must be positive (completions are sampled), got 0.0"),
])
def test_out_of_range_numbers_are_one_line_errors(stage, flags, reason, tiny, trajectories, tmp_path, capsys):
    code = {"sft": sft, "grpo": grpo}[stage](tiny, trajectories, tmp_path / "o", *flags)
    assert reason in one_line_error(capsys, code, tmp_path / "o")


def test_output_dir_that_is_a_file_or_someone_elses_folder_is_refused_before_loading(tiny, trajectories, tmp_path,
                                                                                      capsys):
    (tmp_path / "o").write_text("not a folder")
    code = sft(tiny, trajectories, tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2 and f"--out {tmp_path / 'o'} is a file, not a folder" in err
    assert "Loading weights" not in err
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README.md").write_text("my project")
    code = grpo(tiny, trajectories, tmp_path / "project")
    err = capsys.readouterr().err
    assert code == 2 and "none a run leaves (config.json, trainer_state.json, runs, checkpoint-*)" in err
    assert [p.name for p in (tmp_path / "project").iterdir()] == ["README.md"]
    assert (tmp_path / "project" / "README.md").read_text() == "my project"


def test_model_folder_without_processor(tiny, trajectories, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny / name, bare / name)
    code = sft(bare, trajectories, tmp_path / "o")
    assert "model folder has no processor" in one_line_error(capsys, code, tmp_path / "o")


def test_data_in_another_coordinate_space(tiny, tmp_path, capsys):
    data = write_trajectories(tmp_path / "norm", n=2, coords="norm1000")
    code = sft(tiny, data, tmp_path / "o")
    assert "ask for norm1000 boxes but qwen2_5_vl models answer in resized" in one_line_error(capsys, code,
                                                                                               tmp_path / "o")


def test_reward_weights_must_match_rewards(tiny, trajectories, tmp_path, capsys):
    code = grpo(tiny, trajectories, tmp_path / "o", "--rewards", "format,image", "--reward_weights", "1,1,1")
    assert "--reward-weights has 3 value(s)" in one_line_error(capsys, code, tmp_path / "o")


def test_resume_without_checkpoint(tiny, trajectories, tmp_path, capsys):
    code = sft(tiny, trajectories, tmp_path / "o", "--resume")
    assert "no checkpoint-N folder" in one_line_error(capsys, code, tmp_path / "o")


def test_resume_passes_over_a_checkpoint_a_killed_save_left_damaged(sft_run, tiny, trajectories, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sft_run, run)
    weights = run / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # the save was cut short
    assert sft(tiny, trajectories, run, "--max_steps", "6", "--save_steps", "2", "--resume", *QUIET) == 0
    err = capsys.readouterr().err
    assert "--resume: passed over checkpoint-4 (model.safetensors cut short: " in err
    assert "resuming from checkpoint-2" in err
    history = state(run)
    assert history["global_step"] == 6
    assert [h["step"] for h in history["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]


def test_resume_with_no_whole_checkpoint_is_one_line(sft_run, tiny, trajectories, tmp_path, capsys):
    from mirg.train.common import find_checkpoint

    run = tmp_path / "run"
    shutil.copytree(sft_run, run)
    (run / "checkpoint-4" / "trainer_state.json").unlink()  # killed before the trainer's state was written
    (run / "checkpoint-2" / "model.safetensors").write_bytes(b"\x10")
    with pytest.raises(MirgError, match=r"no whole checkpoint in .*: checkpoint-4 \(no trainer_state.json\); "
                       r"checkpoint-2 \(model.safetensors cut short: "):
        find_checkpoint(str(run))
    code = sft(tiny, trajectories, run, "--max_steps", "6", "--resume", *QUIET)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mirg: error: --resume: no whole checkpoint") and err.count("\n") == 1


def test_resume_from_a_named_checkpoint_is_honoured_and_checked(sft_run, tiny, trajectories, tmp_path, capsys):
    run = tmp_path / "run"
    assert sft(tiny, trajectories, run, "--max_steps", "3", "--save_strategy", "no",
               "--resume_from_checkpoint", str(sft_run / "checkpoint-2"), *QUIET) == 0
    history = state(run)  # steps 1-2 came from the checkpoint, only step 3 was trained here
    assert history["global_step"] == 3 and [h["step"] for h in history["log_history"] if "loss" in h][-1] == 3
    capsys.readouterr()
    broken = tmp_path / "checkpoint-9"
    shutil.copytree(sft_run / "checkpoint-2", broken)
    (broken / "trainer_state.json").write_text("{")
    for args, reason in ((["--resume_from_checkpoint", str(broken)], "not a whole checkpoint (trainer_state.json"),
                         (["--resume_from_checkpoint", str(tmp_path / "none")], "no such folder"),
                         (["--resume_from_checkpoint", str(sft_run / "checkpoint-2"), "--resume"], "not both")):
        code = sft(tiny, trajectories, tmp_path / "o", *args)
        assert reason in one_line_error(capsys, code, tmp_path / "o")


@pytest.mark.parametrize("args, reason", [
    (["--eval_strategy", "steps", "--eval_steps", "1"],
     "cannot build the sft trainer: You have set `args.eval_strategy`"),
    (["--report_to", "wandb"], "cannot build the sft trainer: WandbCallback requires wandb to be installed"),
])
def test_options_the_trainer_refuses_are_one_line(tiny, trajectories, tmp_path, capsys, args, reason):
    if "wandb" in args and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here, so --report_to wandb is no error")
    code = sft(tiny, trajectories, tmp_path / "o", "--max_steps", "1", "--save_strategy", "no", *args)
    err = capsys.readouterr().err
    assert code == 2 and reason in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("mirg: error: ")


def test_push_to_hub_with_the_hub_out_of_reach_is_one_line(tiny, trajectories, tmp_path, mirg):
    with socket.socket() as probe:  # a loopback port nothing listens on: the Hub refuses at once, offline or not
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": "hf_x", "HF_HUB_OFFLINE": "0"}
    proc = mirg("sft", "--model", str(tiny), "--data", str(trajectories), "--output_dir", str(tmp_path / "o"),
                "--max_steps", "1", "--save_strategy", "no", "--push_to_hub", "true", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mirg: error: cannot build the sft trainer: the Hugging Face Hub is out of reach (")


def test_stage_help_lists_trl_and_mirg_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["grpo", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--num-generations", "--beta", "--vllm-mode", "--rewards", "--object-reward-mode",
                   "--freeze-vision", "--use-lora", "--dry-run", "--resume", "--max-pixels"):
        assert option in text, option



def test_config_errors_are_mirg_errors(tmp_path):
    from mirg.train.config import SFTArguments, parse_arguments

    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1.0e-4\n")
    with pytest.raises(MirgError, match="no model"):
        parse_arguments(SFTArguments, ["--config", str(recipe), "--data", "x"], "sft")
    recipe.write_text("- not a mapping\n")
    with pytest.raises(MirgError, match="must be a mapping"):
        parse_arguments(SFTArguments, ["--config", str(recipe)], "sft")
    with pytest.raises(MirgError, match="not found"):
        parse_arguments(SFTArguments, ["--config", str(tmp_path / "none.yaml")], "sft")
    with pytest.raises(MirgError, match="invalid int value"):
        parse_arguments(SFTArguments, ["--max_steps", "many"], "sft")
    recipe.write_text("learning_rate: 1.0e-4\n", encoding="utf-16")  # a Windows editor's "Unicode"
    with pytest.raises(MirgError, match=r"r.yaml: not UTF-8 text"):
        parse_arguments(SFTArguments, ["--config", str(recipe)], "sft")


def test_the_wheel_ships_the_recipes_the_default_options_come_from(tmp_path):
    """`mirg sft` / `mirg grpo` without --config read recipes/tiny-cpu; an installed wheel must carry them, or it
    would train with TRL's defaults (another learning rate, activations recomputed) where a checkout does not."""
    import zipfile

    source = tmp_path / "source"  # a copy: setuptools builds in place, and a stale build/ would ship deleted files
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("mirg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("mirg/recipes/") for n in names if n.startswith("mirg/recipes/")}
    assert shipped == {f"{r.parent.name}/{r.name}" for r in RECIPES}
    assert "mirg/assets/embedded/model.safetensors" in names
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    probe = subprocess.run([sys.executable, "-c", "import mirg, mirg.train.config as c; "
                            "print(mirg.__file__); print(c.default_recipe('sft'))"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    module, recipe = probe.stdout.split()
    assert module.startswith(str(tmp_path / "site")) and recipe == str(tmp_path / "site/mirg/recipes/tiny-cpu/sft.yaml")


def test_trajectories_opening_with_a_byte_order_mark_read_as_without_one(trajectories, tmp_path):
    from mirg.train.data import STAGE_COLUMNS, read_records

    plain = trajectories / "sft.jsonl"
    marked = trajectories / "sft_bom.jsonl"  # beside it: the records' image paths are relative to the folder
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    try:
        assert read_records(marked, STAGE_COLUMNS["sft"]) == read_records(plain, STAGE_COLUMNS["sft"])
    finally:
        marked.unlink()


def test_trajectories_that_are_not_utf8_text_are_one_line(trajectories, tmp_path, capsys):
    from mirg.train.data import STAGE_COLUMNS, read_records

    garbled = tmp_path / "garbled"
    garbled.mkdir()
    (garbled / "sft.jsonl").write_bytes((trajectories / "sft.jsonl").read_bytes()[:200] + b"\xd1\xff\n")
    with pytest.raises(MirgError, match=r"sft.jsonl: not UTF-8 text \(invalid continuation byte\)"):
        read_records(garbled / "sft.jsonl", STAGE_COLUMNS["sft"])
    code = main(["sft", "--model", "embedded", "--data", str(garbled), "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "not UTF-8 text" in err and "Traceback" not in err
