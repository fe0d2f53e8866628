"""Token budgets checked before training: every sample's tokens counted as TRL will build them (images at the run's
pixel limits, asked of the processor), printed by the dry runs, and a sample over the run's limits refused in one
line or, with --drop_overlong, left out and counted; never cut through its image tokens. With vLLM rollouts: the
images per prompt and the context, and the pixel limits vLLM resizes with."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mirg.cli import main
from mirg.geometry import CoordSpace
from mirg.models import adapter_for
from train_fixtures import write_trajectories

REPO = Path(__file__).resolve().parents[1]
RECIPE_3B = REPO / "recipes" / "qwen2.5-vl-3b"
RECIPE_MAX_PIXELS = 401408
CPU = ["--bf16", "false", "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "qwen2_5_vl"
    assert main(["model", "init-tiny", "--family", "qwen2_5_vl", "--out", str(out), "--size", "xs"]) == 0
    return out


@pytest.fixture(scope="module")
def stage_one(tiny, tmp_path_factory) -> Path:
    """The tiny model with its processor saved at the GPU recipes' limits, as `mirg sft` saves its output."""
    out = tmp_path_factory.mktemp("stage1") / "model"
    shutil.copytree(tiny, out)
    adapter_for(tiny).load_processor(tiny, max_pixels=RECIPE_MAX_PIXELS).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two samples of four 640-px images each (640x640 and 640x480), written for the 3B recipe's limits."""
    return write_trajectories(tmp_path_factory.mktemp("photos") / "traj", n=2, images_per_prompt=(4, 4), side=640,
                              coords="resized", max_pixels=RECIPE_MAX_PIXELS)


def one_line_error(capsys, code: int) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.err.startswith("mirg: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


def sft_3b(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["sft", "--config", str(RECIPE_3B / "sft.yaml"), "--model", str(model), "--data", str(data),
                 "--output_dir", str(out), *extra])


def grpo_3b(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["grpo", "--config", str(RECIPE_3B / "grpo.yaml"), "--model", str(model), "--data", str(data),
                 "--output_dir", str(out), "--dry-run", *extra])


def printed_json(text: str) -> dict:
    return json.loads(text[text.index("{"):])


# -- SFT: max_length ----------------------------------------------------------------------------------


def test_sft_step_over_max_length_is_refused_in_one_line_not_cut_through_image_tokens(tiny, photos, tmp_path,
                                                                                       capsys):
    """Four 640-px images cost 1750 image tokens at max_pixels 401408: TRL would cut a 256-token sequence through
    them ("Image features and image tokens do not match"); the run refuses before loading weights."""
    out = tmp_path / "run"
    code = sft_3b(tiny, photos, out, "--max_length", "256", "--max_steps", "1", *CPU)
    err = one_line_error(capsys, code)
    assert "2 of 2 sample(s) are longer than max_length 256" in err
    assert "1750 of them image tokens from 4 image(s)" in err and "--drop-overlong" in err
    assert not out.exists()


def test_sft_dry_run_prints_the_budget_and_refuses_the_same_data(tiny, photos, tmp_path, capsys):
    code = sft_3b(tiny, photos, tmp_path / "run", "--max_length", "256", "--dry-run")
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and "longer than max_length 256" in captured.err
    budget = printed_json(captured.out)["token_budget"]
    assert budget["samples"] == 2 and budget["over_limits"] == 2 and budget["limits"] == {"max_length": 256}
    assert budget["image_tokens"] == {"min": 1750, "median": 1750, "max": 1750}  # 2 x 484 + 2 x 391
    assert budget["images_per_sample"]["max"] == 4 and set(budget["per_task"]) == {"fixture"}


def test_sft_dry_run_within_max_length_reports_the_budget(tiny, photos, tmp_path, capsys):
    code = sft_3b(tiny, photos, tmp_path / "run", "--max_length", "4096", "--dry-run")
    printed = capsys.readouterr().out
    assert code == 0, printed
    budget = printed_json(printed)["token_budget"]
    assert budget["over_limits"] == 0 and budget["dropped"] == 0
    assert budget["tokens"]["max"] > budget["image_tokens"]["max"] == 1750


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Three samples of two 112-px images and two of four 640-px images, in one folder."""
    root = tmp_path_factory.mktemp("mixed") / "traj"
    short = write_trajectories(root / "short", n=3, images_per_prompt=(2, 2), coords="resized",
                               max_pixels=RECIPE_MAX_PIXELS)
    long = write_trajectories(root / "long", n=2, images_per_prompt=(4, 4), side=640, coords="resized",
                              max_pixels=RECIPE_MAX_PIXELS, seed=1)
    for name in ("sft.jsonl", "rl.jsonl"):
        rows = []
        for part in (short, long):
            for line in (part / name).read_text().splitlines():
                row = json.loads(line)
                row["images"] = [f"{part.name}/{rel}" for rel in row["images"]]
                rows.append(json.dumps({**row, "id": f"{part.name}-{row['id']}"}))
        (root / name).write_text("\n".join(rows) + "\n")
    from mirg.data.trajectories import TrajectoryOptions, write_space_record

    write_space_record(root, TrajectoryOptions(CoordSpace("resized", 3136, RECIPE_MAX_PIXELS)))
    return root


@pytest.mark.slow
def test_drop_overlong_leaves_out_and_counts_then_trains_on_the_rest(tiny, mixed, tmp_path, capsys):
    code = sft_3b(tiny, mixed, tmp_path / "dry", "--max_length", "512", "--drop_overlong", "--dry-run")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = printed_json(captured.out)
    assert report["records"] == 3
    assert (report["token_budget"]["over_limits"], report["token_budget"]["dropped"]) == (2, 2)
    assert "left out 2 of 5 sample(s) over the run's limits" in captured.err
    out = tmp_path / "run"
    assert sft_3b(tiny, mixed, out, "--max_length", "512", "--drop_overlong", "--max_steps", "1",
                  "--per_device_train_batch_size", "3", "--save_strategy", "no", *CPU) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1


def test_drop_overlong_that_would_leave_nothing_is_refused(tiny, photos, tmp_path, capsys):
    code = sft_3b(tiny, photos, tmp_path / "run", "--max_length", "256", "--drop_overlong", "--dry-run")
    assert "every sample is over the run's limits" in one_line_error(capsys, code)


# -- the count is what TRL builds ----------------------------------------------------------------------


def sized_rows(folder: Path, sizes: list[list[tuple[int, int]]], coords: str) -> list[dict]:
    """One record per entry of ``sizes``: blank images of those sizes, the shared prompt and a short answer."""
    from mirg.prompts import user_message

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, row_sizes in enumerate(sizes):
        paths = []
        for j, size in enumerate(row_sizes):
            paths.append(f"images/{i}_{j}.png")
            Image.new("RGB", size, (90 + 30 * j, 120, 200)).save(folder / paths[-1])
        completion = [{"role": "assistant", "content": [{"type": "text", "text": f"<think>image {i}</think>"}]}]
        rows.append({"id": str(i), "task": "t", "images": paths, "prompt": user_message("Find it.", len(paths), coords),
                     "completion": completion})
    return rows


SIZES = [[(640, 480), (300, 200), (900, 616)], [(112, 84)], [(474, 739), (1280, 960)]]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "llava"])
def test_counts_equal_the_sequences_trl_builds_for_images_of_every_size(family, tmp_path):
    """SFT: the collator's attention mask; GRPO: the processor's chat template with the images, as TRL calls it."""
    from trl.data_utils import prepare_multimodal_messages
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from mirg.train.budget import count_tokens

    model = tmp_path / "model"
    assert main(["model", "init-tiny", "--family", family, "--out", str(model), "--size", "xs"]) == 0
    adapter = adapter_for(model).with_pixels(max_pixels=RECIPE_MAX_PIXELS)
    processor = adapter.load_processor(model, adapter.min_pixels, adapter.max_pixels)
    rows = sized_rows(tmp_path / "data", SIZES, adapter.coords)
    collator = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)
    sft = count_tokens(rows, processor, tmp_path / "data", "sft")
    grpo = count_tokens(rows, processor, tmp_path / "data", "grpo")
    for row, sft_count, grpo_count in zip(rows, sft, grpo):
        images = [Image.open(tmp_path / "data" / rel).convert("RGB") for rel in row["images"]]
        batch = collator([{"prompt": row["prompt"], "completion": row["completion"], "images": images}])
        assert sft_count.total == int(batch["attention_mask"].sum())
        prompt = prepare_multimodal_messages(json.loads(json.dumps(row["prompt"])), images)
        ids = processor.apply_chat_template([prompt], add_generation_prompt=True, tokenize=True, return_dict=True)
        assert grpo_count.total == len(ids["input_ids"][0])
        assert grpo_count.image == sft_count.image and sft_count.images == len(images)
    if family != "llava":  # LLaVA's images all cost one fixed count; Qwen's grow with the image
        assert sft[0].image > sft[2].image / 2 > 0 and sft[1].image < sft[0].image / 10


def test_sizes_from_rows_and_from_headers_agree_and_a_bad_image_is_one_line(tiny, tmp_path):
    from mirg.errors import MirgError
    from mirg.train.budget import count_tokens

    processor = adapter_for(tiny).load_processor(tiny, max_pixels=RECIPE_MAX_PIXELS)
    rows = sized_rows(tmp_path, SIZES, "resized")
    from_headers = count_tokens(rows, processor, tmp_path, "sft")
    with_sizes = [{**row, "image_sizes": [list(s) for s in sizes]} for row, sizes in zip(rows, SIZES)]
    assert count_tokens(with_sizes, processor, tmp_path, "sft") == from_headers
    halved = [{**row, "image_sizes": [[w // 2, h // 2] for w, h in sizes]} for row, sizes in zip(rows, SIZES)]
    assert count_tokens(halved, processor, tmp_path, "sft") != from_headers  # the rows' sizes are what is read
    (tmp_path / rows[1]["images"][0]).write_bytes(b"not an image")
    with pytest.raises(MirgError, match=r"images/1_0.png: not an image that can be read"):
        count_tokens(rows, processor, tmp_path, "sft")


# -- GRPO with vLLM --------------------------------------------------------------------------------------


def test_grpo_dry_run_refuses_six_images_under_a_limit_of_four(stage_one, tmp_path, capsys):
    data = write_trajectories(tmp_path / "six", n=2, images_per_prompt=(6, 6), coords="resized",
                              max_pixels=RECIPE_MAX_PIXELS)
    code = grpo_3b(stage_one, data, tmp_path / "run", "--vllm_max_images", "4")
    err = one_line_error(capsys, code)
    assert "2 of 2 sample(s) hold more images than vllm_max_images 4 (record 1 id t-000: 6)" in err
    assert "--limit-mm-per-prompt '{\"image\": 6}'" in err
    assert grpo_3b(stage_one, data, tmp_path / "run") == 0  # the recipe's 6


def test_grpo_dry_run_refuses_prompts_over_the_vllm_context(stage_one, photos, tmp_path, capsys):
    code = grpo_3b(stage_one, photos, tmp_path / "run", "--vllm_max_model_length", "2048")
    err = one_line_error(capsys, code)
    assert "need more than vllm_max_model_length 2048 tokens with max_completion_length 1024" in err
    assert "raise --vllm-max-model-length to" in err
    capsys.readouterr()
    assert grpo_3b(stage_one, photos, tmp_path / "run") == 0  # the recipe's 5120
    report = printed_json(capsys.readouterr().out)
    assert report["token_budget"]["limits"] == {"vllm_max_model_length": 5120, "max_completion_length": 1024,
                                                "vllm_max_images": 6}
    assert report["vllm"]["mode"] == "colocate" and report["vllm"]["gpu_memory_utilization"] == 0.3


def test_colocated_vllm_refuses_a_folder_whose_processor_resizes_otherwise(tiny, photos, tmp_path, capsys):
    """Colocated vLLM builds its processor from the folder (max_pixels 50176 here): its image features would not
    match the run's image tokens (max_pixels 401408)."""
    code = grpo_3b(tiny, photos, tmp_path / "run")
    err = one_line_error(capsys, code)
    assert "saved processor (min_pixels 3136, max_pixels 50176)" in err
    assert "this run's processor uses min_pixels 3136, max_pixels 401408" in err


def test_server_mode_prints_a_server_command_trl_accepts(tiny, photos, tmp_path, capsys):
    """TRL's `vllm-serve` parser takes the printed command and forwards the multi-image options to `vllm serve`
    (what vLLM does with them is not tested here: it cannot be installed beside this stack)."""
    from trl.scripts.vllm_serve import build_command, make_parser

    assert grpo_3b(tiny, photos, tmp_path / "run", "--vllm_mode", "server") == 0
    command = printed_json(capsys.readouterr().out)["vllm"]["server_command"]
    words = shlex.split(command)
    assert words[:2] == ["trl", "vllm-serve"]
    script_args, extra = make_parser().parse_args_and_config(words[2:], return_remaining_strings=True)
    served = build_command(script_args, extra)
    assert served[served.index("--max-model-len") + 1] == "5120" and script_args.model == str(tiny)
    assert json.loads(served[served.index("--limit-mm-per-prompt") + 1]) == {"image": 6}
    assert json.loads(served[served.index("--mm-processor-kwargs") + 1]) == {"min_pixels": 3136,
                                                                             "max_pixels": RECIPE_MAX_PIXELS}
