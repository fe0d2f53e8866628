"""`mirg data export llamafactory`: the ShareGPT multimodal dataset read back and checked record by record
against sft.jsonl (same images in the same order, one <image> per image, the answer unchanged), and the records
or folders it must refuse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from coco_fixtures import write_coco_set
from mirg.cli import main
from mirg.data.export import user_text

LLAMAFACTORY_KEYS = {"file_name", "formatting", "columns", "tags"}


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory) -> Path:
    """Composed from real and generated photos (photos outside the dataset folder, crops inside it)."""
    root = tmp_path_factory.mktemp("export")
    write_coco_set(root / "coco")
    assert main(["data", "compose", "--coco", str(root / "coco" / "instances.json"), "--images",
                 str(root / "coco" / "photos"), "--out", str(root / "data"), "--samples", "24", "--seed", "2"]) == 0
    assert main(["data", "trajectories", "--data", str(root / "data"), "--out", str(root / "traj"), "--detail",
                 "chain", "--coords", "norm1000"]) == 0
    return root / "traj"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_export(out: Path, traj: Path, name: str) -> list[dict]:
    """Every exported record against its sft.jsonl row; returns the records."""
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {name} and LLAMAFACTORY_KEYS <= set(info[name])
    entry = info[name]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
    assert entry["tags"] == {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                             "assistant_tag": "assistant"}
    exported = read_jsonl(out / entry["file_name"])
    rows = read_jsonl(traj / "sft.jsonl")
    assert [r["id"] for r in exported] == [r["id"] for r in rows]
    for record, row in zip(exported, rows):
        user, assistant = record["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert user["content"].count("<image>") == len(record["images"]) == len(row["images"])
        media_dir = out  # LLaMA-Factory joins its media_dir (by default dataset_dir) with each path
        got = [os.path.realpath(os.path.join(media_dir, p)) for p in record["images"]]
        want = [os.path.realpath(traj / p) for p in row["images"]]
        assert got == want and all(Path(p).is_file() for p in got)
        assert assistant["content"] == row["completion"][0]["content"][0]["text"]
        parts = row["prompt"][0]["content"]
        assert user["content"] == "".join("<image>" if p["type"] == "image" else p["text"] for p in parts)
        assert user["content"].startswith("Image 1:<image>")
        assert user["content"].endswith(parts[-1]["text"])
    return exported


def test_export_reads_back_record_by_record(trajectories, tmp_path, capsys):
    out = tmp_path / "lf"
    assert main(["data", "export", "llamafactory", "--trajectories", str(trajectories), "--out", str(out)]) == 0
    exported = check_export(out, trajectories, "mirg_sft")
    assert len(exported) == 24 and all(not Path(p).is_absolute() for r in exported for p in r["images"])
    readme = (out / "README.md").read_text()
    assert f"dataset_dir: {out.resolve()}" in readme and "norm1000 (24)" in readme
    assert "warning" not in capsys.readouterr().err
    assert not (out / "rejected.jsonl").exists()


def test_absolute_paths_and_a_name_of_ones_own(trajectories, tmp_path):
    out = tmp_path / "lf"
    assert main(["data", "export", "llamafactory", "--trajectories", str(trajectories), "--out", str(out),
                 "--name", "coco_multi", "--absolute-paths"]) == 0
    exported = check_export(out, trajectories, "coco_multi")
    assert all(Path(p).is_absolute() for r in exported for p in r["images"])
    assert main(["data", "export", "llamafactory", "--trajectories", str(trajectories), "--out", str(out),
                 "--name", "coco_multi"]) == 0  # an earlier export's folder is rewritten
    assert all(not Path(p).is_absolute() for r in read_jsonl(out / "coco_multi.jsonl") for p in r["images"])


def test_a_literal_image_placeholder_in_the_text_is_left_out_and_counted(trajectories, tmp_path, capsys):
    traj = tmp_path / "traj"
    traj.mkdir()
    rows = read_jsonl(trajectories / "sft.jsonl")
    question = rows[3]["prompt"][0]["content"][-1]
    question["text"] = "Which <image> shows it? " + question["text"]
    for row in rows:  # the rows' image paths, relative to the copy
        row["images"] = [os.path.relpath(trajectories / p, traj) for p in row["images"]]
    (traj / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "lf"
    assert main(["data", "export", "llamafactory", "--trajectories", str(traj), "--out", str(out)]) == 0
    assert "1 left out" in capsys.readouterr().out
    exported = read_jsonl(out / "mirg_sft.jsonl")
    assert len(exported) == 23 and rows[3]["id"] not in {r["id"] for r in exported}
    (rejected,) = read_jsonl(out / "rejected.jsonl")
    assert rejected["id"] == rows[3]["id"] and "literal <image>" in rejected["reason"]


def test_resized_boxes_are_warned_about(trajectories, tmp_path, capsys):
    data = trajectories.parent / "data"
    traj = tmp_path / "traj"
    assert main(["data", "trajectories", "--data", str(data), "--out", str(traj), "--coords", "resized",
                 "--max-pixels", "50176"]) == 0
    capsys.readouterr()
    assert main(["data", "export", "llamafactory", "--trajectories", str(traj), "--out", str(tmp_path / "lf")]) == 0
    printed = capsys.readouterr().err
    assert "mirg: warning: the answers' boxes are in resized pixels (min_pixels 3136, max_pixels 50176)" in printed
    assert "image_max_pixels" in (tmp_path / "lf" / "README.md").read_text()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("mirg: error: ") and len(err.splitlines()) == 1, err
    return err


def test_bad_trajectories_and_folders_are_one_line_errors(trajectories, tmp_path, capsys):
    def export(traj, out, *extra):
        return main(["data", "export", "llamafactory", "--trajectories", str(traj), "--out", str(out), *extra])

    assert export(tmp_path / "none", tmp_path / "a") == 2 and "no sft.jsonl there" in _one_line_error(capsys)
    assert export(trajectories, trajectories) == 2 and "is the trajectories folder" in _one_line_error(capsys)
    assert export(trajectories, tmp_path / "a", "--name", "../x") == 2 and "--name" in _one_line_error(capsys)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert export(trajectories, theirs) == 2 and "holds other files" in _one_line_error(capsys)

    broken = tmp_path / "broken"
    broken.mkdir()
    lines = (trajectories / "sft.jsonl").read_text().splitlines()
    (broken / "sft.jsonl").write_text(lines[0] + "\n" + lines[1][:40] + "\n")
    assert export(broken, tmp_path / "b") == 2 and "sft.jsonl:2: unreadable JSON" in _one_line_error(capsys)
    row = json.loads(lines[0])
    row["images"] = row["images"][:1] + ["gone.png"] * (len(row["images"]) - 1)
    (broken / "sft.jsonl").write_text(json.dumps(row) + "\n")
    assert export(broken, tmp_path / "c") == 2 and "image file(s)" in _one_line_error(capsys)
    row["images"] = row["images"][:1]
    (broken / "sft.jsonl").write_text(json.dumps(row) + "\n")
    assert export(broken, tmp_path / "d") == 2 and "image part(s) but images lists 1" in _one_line_error(capsys)
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_user_text_joins_parts_as_the_chat_template_does():
    row = {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Image 1:"}, {"type": "image"},
                                                   {"type": "text", "text": "Image 2:"}, {"type": "image"},
                                                   {"type": "text", "text": "Q?"}]}]}
    assert user_text(row, "x") == ("Image 1:<image>Image 2:<image>Q?", 2)
