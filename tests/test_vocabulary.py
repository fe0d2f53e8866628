"""One command-line vocabulary: kebab-case everywhere, one name per idea, old spellings working with a notice."""

from __future__ import annotations

import argparse
import re
import tempfile

import pytest

from mirg.cli import build_parser, main
from mirg.errors import MirgError

SNAKE_OPTION = re.compile(r"--[a-z0-9]+_[a-z0-9_]+")


def every_help(parser: argparse.ArgumentParser, path=()) -> dict[tuple[str, ...], str]:
    """The --help text of every command and sub-command."""
    helps = {path: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                helps |= every_help(sub, (*path, name))
    return helps


def stage_help(capsys, *argv: str) -> str:
    """What `mirg sft|grpo --help[-all]` prints (it exits 0)."""
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code in (0, None)
    return capsys.readouterr().out


def test_no_help_names_an_option_in_snake_case(capsys):
    helps = every_help(build_parser())
    assert len(helps) > 12
    for stage in ("sft", "grpo"):  # their help is TRL's fields, printed by the stage's own parser
        helps[(stage,)] = stage_help(capsys, stage, "--help")
    offending = {" ".join(path): SNAKE_OPTION.findall(text) for path, text in helps.items() if SNAKE_OPTION.search(text)}
    assert not offending


def test_stage_help_is_mirgs_options_and_the_common_trl_ones_with_every_option_behind_help_all(capsys):
    short, full = stage_help(capsys, "grpo", "--help"), stage_help(capsys, "grpo", "--help-all")
    assert short.index("mirg's options") < short.index("--freeze-vision") < short.index("most used TRL options")
    for flag in ("--out", "--learning-rate", "--num-generations", "--beta", "--use-vllm", "--rewards", "--dtype"):
        assert re.search(rf"^\s+{flag}\b", short, re.MULTILINE), flag
    assert len(short.splitlines()) < 160 < 600 < len(full.splitlines())
    assert "--help-all" in short and "--top_entropy_quantile" in full and "--top-entropy-quantile" not in short


def test_old_spellings_keep_working_with_a_notice(capsys):
    parser = build_parser()
    cases = {("demo", "--n-train", "5"): ("train_samples", 5), ("demo", "--n-test", "7"): ("test_samples", 7),
             ("demo", "--sft-cooldown", "0.2"): ("sft_lr_cooldown", 0.2), ("demo", "--train-vision"): ("freeze_vision", False),
             ("data", "synth", "--out", "x", "--n", "3"): ("samples", 3),
             ("model", "pretrain-tiny", "--out", "x", "--cooldown", "0.3"): ("cooldown", 0.3),
             ("eval", "--model", "m", "--data", "d", "--out", "r", "--limit", "4"): ("max_samples", 4)}
    for argv, (dest, value) in cases.items():
        assert getattr(parser.parse_args(list(argv)), dest) == value, argv
        old = next(token for token in argv[1:] if token.startswith("--") and token not in ("--out", "--model", "--data"))
        assert f"mirg: note: {old} is now --" in capsys.readouterr().err
    assert build_parser().parse_args(["demo"]).freeze_vision is True  # the default the renamed flag turned off


def test_snake_case_spellings_of_kebab_options_are_respelled_with_a_notice(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--samples", "2", "--image_size", "64", "--tasks", "common_object",
                 "--max_images", "2"]) == 0
    err = capsys.readouterr().err
    assert "--image_size is now --image-size" in err and "--max_images is now --max-images" in err
    assert {p.name for p in (tmp_path / "d" / "images").iterdir()}  # it ran with them


def test_an_option_of_another_command_is_not_respelled(capsys):
    # --max-pixels is an option of `mirg eval`, `mirg score` and `mirg data trajectories`, not of `mirg data synth`
    with pytest.raises(SystemExit):
        main(["data", "synth", "--out", "x", "--max_pixels", "5"])
    err = capsys.readouterr().err
    assert "is now" not in err and "unrecognized arguments: --max_pixels" in err


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_stage_options_take_mirgs_names_and_trls_spellings_alike(tmp_path, capsys, monkeypatch, stage):
    from mirg.train.config import GRPOArguments, SFTArguments, parse_arguments

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    cls = SFTArguments if stage == "sft" else GRPOArguments
    common = ["--model", "embedded", "--data", str(tmp_path), "--report-to", "none"]
    args = parse_arguments(cls, [*common, "--out", str(tmp_path / "o"), "--learning-rate", "0.003",
                                 "--per_device_train_batch_size", "4", "--model_dtype", "bfloat16"], stage)
    assert (args.output_dir, args.learning_rate, args.per_device_train_batch_size, args.dtype) == \
        (str(tmp_path / "o"), 0.003, 4, "bfloat16")
    assert "--model_dtype is now --dtype" in capsys.readouterr().err
    recipe = tmp_path / "old.yaml"
    recipe.write_text("model_dtype: float16\nper_device_train_batch_size: 8\n")
    assert parse_arguments(cls, ["--config", str(recipe), *common], stage).dtype == "float16"
    assert "recipe key model_dtype is now dtype" in capsys.readouterr().err
    assert not list(scratch.iterdir())  # the respelled copy is gone
    recipe.write_text("model_dtype: float16\ndtype: bfloat16\n")
    with pytest.raises(MirgError, match="both model_dtype and dtype are set; keep dtype"):
        parse_arguments(cls, ["--config", str(recipe), *common], stage)
