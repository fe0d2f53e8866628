"""Published model shapes: `mirg model init`, `mirg model info`, and one SFT and one GRPO step through the real
commands on photos of several sizes, at a fraction of the published width (the shape code paths: several images
per prompt, M-RoPE sections, windowed attention, deepstack, image-token accounting)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mirg.cli import main
from mirg.architectures.published import PUBLISHED, published_shape
from photo_fixtures import MIXED_SIZES, write_photo_dataset

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "qwen2.5-vl-3b"
QUIET = ["--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--save_strategy", "no"]

#: The public config.json values, written out again here so that a change to the data is a failing test.
#: (hidden, intermediate, layers, heads, kv heads, vocab, tied, rope theta, mrope sections,
#:  vision depth, vision hidden, vision intermediate, vision heads, out hidden, patch, special blocks)
EXPECTED = {
    ("qwen2_5_vl", "3b"): (2048, 11008, 36, 16, 2, 151936, True, 1e6, (16, 24, 24),
                           32, 1280, 3420, 16, 2048, 14, (7, 15, 23, 31)),
    ("qwen2_5_vl", "7b"): (3584, 18944, 28, 28, 4, 152064, False, 1e6, (16, 24, 24),
                           32, 1280, 3420, 16, 3584, 14, (7, 15, 23, 31)),
    ("qwen3_vl", "2b"): (2048, 6144, 28, 16, 8, 151936, True, 5e6, (24, 20, 20),
                         24, 1024, 4096, 16, 2048, 16, (5, 11, 17)),
    ("qwen3_vl", "4b"): (2560, 9728, 36, 32, 8, 151936, True, 5e6, (24, 20, 20),
                         24, 1024, 4096, 16, 2560, 16, (5, 11, 17)),
    ("qwen3_vl", "8b"): (4096, 12288, 36, 32, 8, 151936, False, 5e6, (24, 20, 20),
                         27, 1152, 4304, 16, 4096, 16, (8, 16, 24)),
}
#: Parameters of the published checkpoints (their safetensors totals: 3.75B, 8.29B, 2.13B, 4.44B, 8.77B).
CHECKPOINT_PARAMETERS = {("qwen2_5_vl", "3b"): 3_754_622_976, ("qwen2_5_vl", "7b"): 8_292_166_656,
                         ("qwen3_vl", "2b"): 2_127_532_032, ("qwen3_vl", "4b"): 4_437_815_808,
                         ("qwen3_vl", "8b"): 8_767_123_696}


def shape_tuple(shape) -> tuple:
    t, v = shape.text, shape.vision
    blocks = v.fullatt_block_indexes or v.deepstack_visual_indexes
    return (t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads,
            t.vocab_size, t.tie_word_embeddings, t.rope_theta, t.mrope_section, v.depth, v.hidden_size,
            v.intermediate_size, v.num_heads, v.out_hidden_size, v.patch_size, blocks)


def test_published_table_holds_the_public_configs():
    assert set(PUBLISHED) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        shape = published_shape(*key)
        assert shape_tuple(shape) == expected, key
        assert sum(shape.text.mrope_section) == shape.text.head_dim // 2 == 64  # M-RoPE covers every frequency
        assert f"-{key[1].upper()}-Instruct/blob/main/config.json" in shape.source
    assert published_shape("qwen3_vl", "4b").text.mrope_interleaved
    assert not published_shape("qwen2_5_vl", "3b").text.mrope_interleaved
    assert published_shape("qwen2_5_vl", "7b").vision.window_size == 112


@pytest.mark.parametrize("key", sorted(CHECKPOINT_PARAMETERS))
def test_full_depth_holds_as_many_parameters_as_the_published_checkpoint(key):
    from mirg.architectures.build import count_parameters, model_config
    from mirg.architectures.tokenizer import build_family_tokenizer

    config = model_config(published_shape(*key), build_family_tokenizer(key[0]))
    assert count_parameters(config, key[0])["total"] == CHECKPOINT_PARAMETERS[key]


def test_init_7b_cut_to_two_layers_keeps_the_published_widths(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["model", "init", "--family", "qwen2_5_vl", "--size", "7b", "--layers", "2", "--vision-depth", "2",
                 "--out", str(out), "--config-only"]) == 0
    config = json.loads((out / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    assert (text["hidden_size"], text["intermediate_size"], text["num_attention_heads"], text["num_key_value_heads"],
            text["vocab_size"], text["num_hidden_layers"]) == (3584, 18944, 28, 4, 152064, 2)
    assert text["rope_parameters"]["mrope_section"] == [16, 24, 24] and text["rope_parameters"]["rope_theta"] == 1e6
    assert config["tie_word_embeddings"] is False and text["rms_norm_eps"] == 1e-6
    assert (vision["depth"], vision["hidden_size"], vision["intermediate_size"], vision["num_heads"],
            vision["out_hidden_size"], vision["patch_size"], vision["spatial_merge_size"],
            vision["temporal_patch_size"], vision["window_size"]) == (2, 1280, 3420, 16, 3584, 14, 2, 2, 112)
    assert vision["fullatt_block_indexes"] == [1]  # the top block attends fully, the one below in windows
    processor = json.loads((out / "processor_config.json").read_text())["image_processor"]
    assert processor["size"] == {"longest_edge": 12845056, "shortest_edge": 3136} and processor["patch_size"] == 14
    assert not (out / "model.safetensors").exists()
    capsys.readouterr()

    assert main(["model", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["depth"] == {"layers": 2, "vision_depth": 2}
    params = info["parameters"]
    assert params["embeddings"] == 2 * 152064 * 3584  # input table and an untied output head
    assert params["total"] == params["embeddings"] + params["vision_tower"] + params["language_model"]
    assert info["full_depth"]["parameters"]["total"] == CHECKPOINT_PARAMETERS[("qwen2_5_vl", "7b")]
    assert info["full_depth"]["layers"] == 28 and info["full_depth"]["vision_depth"] == 32
    assert info["embedding_rows"] == 152064 > info["tokenizer_tokens"] and "152064 rows" in info["vocabulary_note"]


def test_init_qwen3_vl_keeps_deepstack_and_its_processor(tmp_path):
    out = tmp_path / "m"
    assert main(["model", "init", "--family", "qwen3_vl", "--size", "8b", "--layers", "2", "--vision-depth", "9",
                 "--out", str(out), "--config-only"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["vision_config"]["deepstack_visual_indexes"] == [2, 5, 8]  # 8, 16, 24 of 27 scaled to 9 blocks
    assert config["vision_config"]["num_position_embeddings"] == 2304 and config["vision_config"]["patch_size"] == 16
    assert config["text_config"]["head_dim"] == 128 and config["text_config"]["rope_parameters"]["mrope_interleaved"]
    processor = json.loads((out / "processor_config.json").read_text())["image_processor"]
    assert processor["size"] == {"longest_edge": 16777216, "shortest_edge": 65536}
    assert processor["image_mean"] == [0.5, 0.5, 0.5] and processor["patch_size"] == 16
    record = json.loads((out / "init_model.json").read_text())
    assert record["full_depth"]["deepstack_visual_indexes"] == [8, 16, 24]


@pytest.mark.parametrize("args, reason", [
    (["--family", "qwen2_5_vl", "--size", "8b"], "qwen2_5_vl has no published size '8b'; choose one of 3b, 7b"),
    (["--family", "qwen3_vl", "--size", "4b", "--layers", "37"], "--layers must be between 1 and 36"),
    (["--family", "qwen3_vl", "--size", "4b", "--vision-depth", "0"], "--vision-depth must be between 1 and 24"),
    (["--family", "qwen3_vl", "--size", "4b", "--width-scale", "0"], "--width-scale must be above 0"),
])
def test_init_refuses_what_it_cannot_build_in_one_line(tmp_path, capsys, args, reason):
    assert main(["model", "init", *args, "--out", str(tmp_path / "m"), "--config-only"]) == 2
    err = capsys.readouterr().err
    assert reason in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_family_tokenizer_has_the_published_special_tokens_and_template(family):
    from mirg.answer import render_answer
    from mirg.architectures.tokenizer import build_family_tokenizer
    from mirg.prompts import user_message

    tokenizer = build_family_tokenizer(family)
    special = set(tokenizer.convert_ids_to_tokens(tokenizer.all_special_ids)) | {
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    for token in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|object_ref_start|>",
                  "<|box_start|>", "<|quad_end|>", "<|vision_pad|>"):
        assert token in special, token
    for token in ("<think>", "</think>", "<answer>", "</answer>", "<tool_call>"):
        assert token not in special and len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
    text = render_answer(2, [10, 20, 30, 40], think="In image 2.")
    assert tokenizer.decode(tokenizer.encode(text + "<|im_end|>", add_special_tokens=False),
                            skip_special_tokens=True) == text
    prompt = user_message("Where?", 2, "norm1000")
    completion = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    assert whole.startswith(head) and head.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    default_system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert head.startswith(default_system) == (family == "qwen2_5_vl")


# -- one SFT and one GRPO step at real image sizes, reduced width --------------------------------------------------

#: Image limits of the steps: every photo is resized (a different grid per image, none a whole number of Qwen2.5-VL's
#: attention windows), small enough for a quick test.
STEP_MAX_PIXELS = 25088


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_photo_dataset(tmp_path_factory.mktemp("photos") / "data", MIXED_SIZES, samples=2)


def image_tokens(model: Path, data: Path) -> list[int]:
    """Image tokens per sample at the steps' pixel limits, from the model's own processor."""
    from PIL import Image

    from mirg.models import adapter_for

    processor = adapter_for(model).load_processor(model, min_pixels=3136, max_pixels=STEP_MAX_PIXELS)
    merge = processor.image_processor.merge_size
    counts = []
    for line in (data / "sft.jsonl").read_text().splitlines():
        images = [Image.open(data / path) for path in json.loads(line)["images"]]
        grids = processor.image_processor(images=images, return_tensors="pt")["image_grid_thw"]
        counts.append(int(grids.prod(-1).sum()) // merge ** 2)
    return counts


def saved_parameters(model: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "pt") as weights:
        return sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())


@pytest.mark.slow
@pytest.mark.parametrize("family, size, scale, coords, training", [
    # one head of 128 (hidden 128), untied head, LoRA: the 7B recipe's way on 24 GiB
    ("qwen2_5_vl", "7b", "0.036", "resized", ["--use_lora", "true"]),
    # two heads of 128 (hidden 160): deepstack, interleaved M-RoPE, learned position grid; full training
    ("qwen3_vl", "4b", "0.0625", "norm1000", []),
])
def test_one_sft_and_one_grpo_step_with_four_photos_per_prompt(photos, tmp_path, family, size, scale, coords,
                                                                training):
    model, data = tmp_path / "model", tmp_path / "traj"
    assert main(["model", "init", "--family", family, "--size", size, "--layers", "2", "--vision-depth", "2",
                 "--width-scale", scale, "--out", str(model)]) == 0
    record = json.loads((model / "init_model.json").read_text())
    assert record["parameters"]["total"] == saved_parameters(model)  # real weights, counted right
    assert main(["data", "trajectories", "--data", str(photos), "--out", str(data), "--coords", coords,
                 "--max-pixels", str(STEP_MAX_PIXELS)]) == 0
    tokens = image_tokens(model, data)
    assert len(set(tokens)) == 1 and tokens[0] >= 4 * 16  # four photos, each of several merged patches
    pixels = ["--min_pixels", "3136", "--max_pixels", str(STEP_MAX_PIXELS)]

    assert main(["sft", "--config", str(RECIPE / "sft.yaml"), "--model", str(model), "--data", str(data),
                 "--output_dir", str(tmp_path / "sft"), "--max_steps", "1", "--bf16", "false",
                 "--dtype", "float32", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps",
                 "1", "--logging_steps", "1", *pixels, *training, *QUIET]) == 0
    sft_log = json.loads((tmp_path / "sft" / "trainer_state.json").read_text())["log_history"][0]
    assert math.isfinite(sft_log["loss"]) and sft_log["num_tokens"] > tokens[0]  # no image token cut off

    assert main(["grpo", "--config", str(RECIPE / "grpo.yaml"), "--model", str(model), "--data", str(data),
                 "--output_dir", str(tmp_path / "grpo"), "--max_steps", "1", "--bf16", "false",
                 "--dtype", "float32", "--use_vllm", "false", "--num_generations", "2",
                 "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
                 "--max_completion_length", "8", "--beta", "0", "--log_completions", "false", "--logging_steps", "1",
                 *pixels, *training, *QUIET]) == 0
    grpo_log = json.loads((tmp_path / "grpo" / "trainer_state.json").read_text())["log_history"][0]
    assert grpo_log["num_tokens"] >= 4 * tokens[0] and "rewards/object_reward/mean" in grpo_log
