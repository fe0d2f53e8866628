"""Model adapters, the locally trained tokenizer and the tiny offline models of every family."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mirg.answer import render_answer
from mirg.cli import main
from mirg.errors import MirgError
from mirg.geometry import CoordSpace
from mirg.models import adapter_for, resolve_model_path, supported_families
from mirg.architectures.tiny import SIZES, mrope_section
from mirg.architectures.tokenizer import MAX_NUMBER_TOKEN, TAG_TOKENS, build_tokenizer, label_token_texts
from mirg.prompts import user_message
from mirg.rewards import build_rewards

FAMILIES = ["qwen2_5_vl", "qwen2_vl", "qwen3_vl", "llava"]


@pytest.fixture(scope="module")
def qwen_tokenizer():
    return build_tokenizer("qwen")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """One tiny model per family, built by the real command."""
    root = tmp_path_factory.mktemp("tiny")
    for family in FAMILIES:
        assert main(["model", "init-tiny", "--family", family, "--out", str(root / family), "--size", "xs"]) == 0
    return {family: root / family for family in FAMILIES}


def two_images() -> list[Image.Image]:
    return [Image.new("RGB", (112, 112), (200, 30, 30)), Image.new("RGB", (140, 112), (30, 30, 200))]


# -- tokenizer and chat template --------------------------------------------------------------------


def test_every_integer_up_to_1000_is_one_ordinary_token(qwen_tokenizer):
    for n in range(MAX_NUMBER_TOKEN + 1):
        ids = qwen_tokenizer.encode(str(n), add_special_tokens=False)
        assert len(ids) == 1, n
    assert len(qwen_tokenizer.encode("1001", add_special_tokens=False)) == 2  # digits are the fallback


def test_tags_survive_skip_special_tokens_and_specials_do_not(qwen_tokenizer):
    text = render_answer(2, [10, 20, 30, 40], think="The red circle is in image 2.")
    ids = qwen_tokenizer.encode(text + "<|im_end|>", add_special_tokens=False)
    for tag in TAG_TOKENS:
        assert qwen_tokenizer.convert_tokens_to_ids(tag) in ids
    assert qwen_tokenizer.decode(ids, skip_special_tokens=True) == text
    special = set(qwen_tokenizer.all_special_ids)
    assert not any(qwen_tokenizer.convert_tokens_to_ids(tag) in special for tag in TAG_TOKENS)


def test_any_text_round_trips(qwen_tokenizer):
    text = "ünïcode 😀 tabs\tand\nnewlines {\"json\": [1.5, -3]} ~`§"
    ids = qwen_tokenizer.encode(text, add_special_tokens=False)
    assert qwen_tokenizer.decode(ids) == text


def test_label_tokens_write_each_synthetic_label_as_one_token(qwen_tokenizer):
    tokenizer = build_tokenizer("qwen", label_tokens=True)
    assert len(tokenizer) == len(qwen_tokenizer) + len(label_token_texts()) == len(qwen_tokenizer) + 42
    for text in label_token_texts():
        assert len(tokenizer.encode(text, add_special_tokens=False)) == 1, text
        assert len(qwen_tokenizer.encode(text, add_special_tokens=False)) == 2, text  # two words without them
        for word in text.split():  # the words alone stay one token each (the vision stage scores against them)
            assert tokenizer.tokenize(" " + word) == qwen_tokenizer.tokenize(" " + word)
    chain = ("<think>Image 1: red circle outlined; blue star. The target is the red circle in image 1. In image 1: "
             "red circle (the target) [152, 179, 438, 473]; blue star [1, 2, 3, 4].</think>")
    ids = tokenizer.encode(chain, add_special_tokens=False)
    assert tokenizer.decode(ids) == chain
    assert ids.count(tokenizer.convert_tokens_to_ids(" red circle")) == 3
    assert tokenizer.tokenize("a reddish circle")[-1] != " red circle"  # only the whole words, after a space


def test_label_token_embeddings_start_as_the_mean_of_their_words(tmp_path):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "m"
    assert main(["model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(out), "--label-tokens"]) == 0
    assert json.loads((out / "tiny_model.json").read_text())["label_tokens"] is True
    tokenizer = adapter_for(out).load_processor(out).tokenizer
    weights = load_file(str(out / "model.safetensors"))
    table = next(v for k, v in weights.items() if k.endswith("embed_tokens.weight"))
    assert table.shape[0] == len(tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    for text in (" red circle", " purple cross"):
        colour, shape = (ids("Ġ" + w) for w in text.split())
        assert torch.allclose(table[ids(text)], (table[colour] + table[shape]) / 2)
        assert not torch.allclose(table[ids(text)], table[colour])


def test_label_tokens_added_to_a_model_start_from_its_trained_words(tmp_path):
    import torch
    from safetensors.torch import load_file

    from mirg.architectures.tiny import add_label_tokens_to

    source, out = tmp_path / "two_words", tmp_path / "one_token"
    assert main(["model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--out", str(source)]) == 0
    assert add_label_tokens_to(source, out) == (len(build_tokenizer("qwen")), len(build_tokenizer("qwen")) + 42)
    old = next(v for k, v in load_file(str(source / "model.safetensors")).items() if k.endswith("embed_tokens.weight"))
    new = next(v for k, v in load_file(str(out / "model.safetensors")).items() if k.endswith("embed_tokens.weight"))
    assert torch.equal(new[: old.shape[0]], old) and new.shape[0] == old.shape[0] + 42  # the trained rows unchanged
    tokenizer = adapter_for(out).load_processor(out).tokenizer
    ids = tokenizer.convert_tokens_to_ids
    colour, shape = ids("Ġgreen"), ids("Ġstar")
    assert torch.allclose(new[ids(" green star")], (old[colour] + old[shape]) / 2)
    assert adapter_for(out).load_model(out).config.get_text_config().vocab_size == len(tokenizer)
    with pytest.raises(MirgError, match="already has every label token"):
        add_label_tokens_to(out, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_chat_template_prompt_is_a_prefix_of_prompt_and_completion(qwen_tokenizer):
    prompt = user_message("Where is the red circle?", 3, "resized")
    completion = [{"role": "assistant", "content": [{"type": "text", "text": render_answer(1, [1, 2, 3, 4])}]}]
    alone = qwen_tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    whole = qwen_tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    assert whole.startswith(alone)
    assert alone.count("<|vision_start|><|image_pad|><|vision_end|>") == 3
    assert alone.endswith("<|im_start|>assistant\n")
    assert whole[len(alone):] == completion[0]["content"][0]["text"] + "<|im_end|>\n"


# -- registry and adapters --------------------------------------------------------------------------


def test_registry_knows_each_family_and_explains_unknown_ones():
    assert supported_families() == FAMILIES
    assert adapter_for("qwen2_5_vl").coords == "resized"
    assert adapter_for("qwen2_vl").coords == "norm1000"
    assert adapter_for("qwen3_vl").coords == "norm1000"
    assert adapter_for("llava").coords == "norm1000"
    with pytest.raises(MirgError, match="supported families: qwen2_5_vl, qwen2_vl, qwen3_vl, llava"):
        adapter_for("mllama")


def test_folder_errors_are_one_line(tmp_path):
    with pytest.raises(MirgError, match="does not exist"):
        resolve_model_path(tmp_path / "missing")
    with pytest.raises(MirgError, match="no config.json"):
        adapter_for(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(MirgError, match="unsupported model type 'gpt2'"):
        adapter_for(tmp_path)


def test_reward_options_follow_the_adapter_pixel_limits():
    """A Qwen2.5-VL box in resized pixels scores as the same box in original pixels, at the adapter's limits."""
    adapter = adapter_for("qwen2_5_vl").with_pixels(max_pixels=200_704)
    size, box = (900, 616), (90.0, 120.0, 450.0, 370.0)
    resized_box = adapter.coord_space().from_pixels(box, size)
    assert resized_box != box  # 900x616 is shrunk at this max_pixels
    completion = render_answer(1, [round(v, 3) for v in resized_box])
    cols = dict(target_image=[1], target_box=[list(box)], image_sizes=[[list(size)]])
    (object_reward,) = build_rewards(["object"], **adapter.reward_options())
    assert object_reward([completion], **cols)[0] == pytest.approx(1.0, abs=1e-3)
    (pixel_reward,) = build_rewards(["object"], coords="pixel")
    assert pixel_reward([completion], **cols)[0] < 0.6


def test_with_pixels_validates():
    with pytest.raises(MirgError, match="min_pixels <= max_pixels"):
        adapter_for("qwen2_5_vl").with_pixels(min_pixels=10_000, max_pixels=5_000)


def test_mrope_section_sums_to_half_the_head_dim():
    for size in SIZES.values():
        assert sum(mrope_section(size.head_dim)) == size.head_dim // 2


# -- tiny models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_reloads_and_generates(tiny_models, family):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    folder = tiny_models[family]
    adapter = adapter_for(folder)
    assert adapter.family == family
    processor = adapter.load_processor(folder)
    assert processor.chat_template and hasattr(processor, "image_processor")
    model = AutoModelForImageTextToText.from_pretrained(str(folder))  # a normal Hugging Face folder
    assert AutoConfig.from_pretrained(str(folder)).model_type == family
    text = processor.apply_chat_template(user_message("Find it.", 2, adapter.coords), add_generation_prompt=True,
                                         tokenize=False)
    inputs = processor(text=[text], images=[two_images()], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 6 or out[0, -1] in model.generation_config.eos_token_id
    assert adapter.vision_parameters(model), "vision tower not found by the adapter's prefixes"


def test_tiny_qwen_saves_pixel_limits_and_upstream_processor_class(tiny_models):
    folder = tiny_models["qwen2_5_vl"]
    adapter = adapter_for(folder)
    assert (adapter.min_pixels, adapter.max_pixels) == (3136, 224 * 224)
    saved = json.loads((folder / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2_5_VLProcessor"
    processor = adapter.load_processor(folder, max_pixels=112 * 112)
    grid = processor(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[Image.new("RGB", (224, 224))],
                     return_tensors="pt")["image_grid_thw"]
    assert grid.tolist() == [[1, 8, 8]]  # 224 px shrunk to 112 px: 8 x 8 patches of 14


def test_tiny_image_token_counts(tiny_models):
    """112 px gives 16 visual tokens in every family (Qwen: 8x8 patches merged 2x2; LLaVA: 4x4 patches of 28)."""
    for family in FAMILIES:
        processor = adapter_for(tiny_models[family]).load_processor(tiny_models[family])
        text = processor.apply_chat_template(user_message("q", 1, "pixel"), add_generation_prompt=True, tokenize=False)
        ids = processor(text=[text], images=[[Image.new("RGB", (112, 112))]], return_tensors="pt")["input_ids"][0]
        image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
        assert int((ids == image_id).sum()) == 16, family


def test_qwen3_position_grid_matches_the_patch_grid(tiny_models):
    config = json.loads((tiny_models["qwen3_vl"] / "config.json").read_text())
    assert config["vision_config"]["num_position_embeddings"] == SIZES["xs"].position_grid ** 2 == 64  # 112/14 = 8


def test_seed_decides_the_weights(tmp_path, tiny_models):
    from safetensors.torch import load_file

    args = ["model", "init-tiny", "--family", "qwen2_5_vl", "--size", "xs"]
    assert main([*args, "--out", str(tmp_path / "same"), "--seed", "0"]) == 0
    assert main([*args, "--out", str(tmp_path / "other"), "--seed", "1"]) == 0
    base = load_file(str(tiny_models["qwen2_5_vl"] / "model.safetensors"))
    same = load_file(str(tmp_path / "same" / "model.safetensors"))
    other = load_file(str(tmp_path / "other" / "model.safetensors"))
    assert all((base[k] == same[k]).all() for k in base)
    assert any((base[k] != other[k]).any() for k in base)


@pytest.mark.parametrize("family", ["qwen3_vl", "llava"])
def test_rope_theta_reaches_the_language_model(tmp_path, tiny_models, family):
    assert main(["model", "init-tiny", "--family", family, "--size", "xs", "--rope-theta", "1e6",
                 "--out", str(tmp_path / "m")]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    default = json.loads((tiny_models[family] / "config.json").read_text())
    assert config["text_config"]["rope_parameters"]["rope_theta"] == 1e6
    assert default["text_config"]["rope_parameters"]["rope_theta"] == SIZES["xs"].rope_theta == 10000.0
    assert json.loads((tmp_path / "m" / "tiny_model.json").read_text())["rope_theta"] == 1e6


def test_lm_layers_sets_the_language_models_depth_only(tmp_path, tiny_models):
    assert main(["model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", "--lm-layers", "3",
                 "--out", str(tmp_path / "m")]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    default = json.loads((tiny_models["qwen3_vl"] / "config.json").read_text())
    assert config["text_config"]["num_hidden_layers"] == 3 != default["text_config"]["num_hidden_layers"]
    assert config["vision_config"] == default["vision_config"]
    assert json.loads((tmp_path / "m" / "tiny_model.json").read_text())["lm_layers"] == 3


@pytest.mark.parametrize("option,value,reason", [
    ("--rope-theta", "0", "--rope-theta must be positive"), ("--rope-theta", "-5", "--rope-theta must be positive"),
    ("--lm-layers", "0", "--lm-layers must be between 1 and 32"),
    ("--lm-layers", "-1", "--lm-layers must be between 1 and 32"),
    ("--lm-layers", "33", "--lm-layers must be between 1 and 32"),
])
def test_an_out_of_range_override_is_refused_before_anything_is_written(tmp_path, capsys, option, value, reason):
    assert main(["model", "init-tiny", "--family", "qwen3_vl", "--size", "xs", option, value,
                 "--out", str(tmp_path / "m")]) == 2
    assert reason in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_init_tiny_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("keep me")
    assert main(["model", "init-tiny", "--family", "llava", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "x.txt").read_text() == "keep me"


def test_folder_without_processor_is_one_clear_message(tmp_path, tiny_models, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(tiny_models["qwen2_5_vl"] / name, bare / name)
    with pytest.raises(MirgError, match="has no processor"):
        adapter_for(bare).load_processor(bare)
    assert main(["model", "info", str(bare)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no processor" in err


def test_model_info(tiny_models, capsys):
    assert main(["model", "info", str(tiny_models["qwen2_vl"])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "qwen2_vl" and info["coords"] == "norm1000"


def test_model_info_on_a_broken_tokenizer_is_one_line(tmp_path, tiny_models, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["qwen2_5_vl"], broken)
    (broken / "tokenizer.json").write_text("{broken")
    assert main(["model", "info", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot build the qwen2_5_vl processor" in err


def test_adapter_coord_space_matches_geometry():
    adapter = adapter_for("qwen2_5_vl")
    assert adapter.coord_space() == CoordSpace("resized", adapter.min_pixels, adapter.max_pixels)


def test_importing_models_and_model_help_stay_light():
    code = (
        "import sys, mirg.models, mirg.commands.model, mirg.commands.train; "
        "print([m for m in ('torch', 'transformers', 'trl') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _break_config(folder: Path, **text_config: int) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["text_config"].update(text_config)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("breakage, reason", [
    ("no_weights", "cannot load the qwen3_vl weights (Error no file named model.safetensors"),
    ("weights_cut_short", "cannot load the qwen3_vl weights (Error while deserializing header"),
    ("one_layer_more", "the weights do not match config.json: 11 missing (first: model.language_model.layers.4."),
    ("wider_mlp", "cannot load the qwen3_vl weights (You set `ignore_mismatched_sizes` to `False`"),
    ("broken_tokenizer", "cannot build the qwen3_vl processor (Expecting property name"),
])
def test_a_broken_model_folder_is_one_line_before_anything_runs(tmp_path, breakage, reason):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path("embedded"), folder)
    weights = folder / "model.safetensors"
    if breakage == "no_weights":
        weights.unlink()
    elif breakage == "weights_cut_short":  # an interrupted copy or download
        weights.write_bytes(weights.read_bytes()[:1000])
    elif breakage == "one_layer_more":  # transformers would fill layer 4 with random weights and go on
        _break_config(folder, num_hidden_layers=5)
    elif breakage == "wider_mlp":
        _break_config(folder, intermediate_size=4096)
    else:
        (folder / "tokenizer.json").write_text("{broken")
    adapter = adapter_for(folder)
    with pytest.raises(MirgError) as caught:
        adapter.load_processor(folder)
        adapter.load_model(folder)
    assert str(caught.value).startswith(f"{folder}: {reason}") and "\n" not in str(caught.value)


def test_loaded_weights_check_reads_either_shape_of_loading_info():
    from mirg.models.base import check_loaded_weights

    check_loaded_weights(Path("m"), {"missing_keys": [], "unexpected_keys": ["x"], "mismatched_keys": []})
    for info in ({"mismatched_keys": [("lm.w", (4, 2), (8, 2))]}, {"mismatched_keys": {"lm.w"}}):
        with pytest.raises(MirgError, match=r"1 of another shape \(first: lm.w\)"):
            check_loaded_weights(Path("m"), info)
    with pytest.raises(MirgError, match=r"2 missing \(first: a.w\) and 1 of another shape"):
        check_loaded_weights(Path("m"), {"missing_keys": {"b.w", "a.w"}, "mismatched_keys": [("c.w", (1,), (2,))]})
