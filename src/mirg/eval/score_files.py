"""`mirg score` as a library call: read data and predictions files, score, summarize."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mirg.data import migbench as benchfiles
from mirg.eval import migbench
from mirg.data.convert import convert_benchmark, find_image
from mirg.errors import MirgError
from mirg.geometry import CoordSpace
from mirg.eval.predictions import PredictionFile, merge_by_id, read_json_file, read_prediction_file
from mirg.schema import Sample, manifest_path, read_manifest
from mirg.eval.scoring import SampleScore, score_compat, score_response, summarize

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"mirg: warning: {message}", file=sys.stderr)


@dataclass
class ScoringData:
    """What ``--data`` held: a manifest's samples, or a MIG-Bench file (and its converted samples)."""

    path: Path
    samples: list[Sample] = field(default_factory=list)
    bench: benchfiles.Benchmark | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frame: str = "pixel"


def load_data(path: str | Path, warn: Warn = _stderr, convert: bool = True) -> ScoringData:
    """Read ``--data``: a manifest (``.jsonl`` or dataset folder) or a MIG-Bench JSON (either version)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".jsonl":
        return ScoringData(path=manifest_path(path), samples=read_manifest(path))
    raw = read_json_file(path)
    if not benchfiles.is_benchmark(raw):
        raise MirgError(f"{path}: neither a manifest (.jsonl) nor a MIG-Bench JSON file")
    bench = benchfiles.load_benchmark(raw, path)
    data = ScoringData(path=path, bench=bench)
    if convert:
        _convert_for_scoring(data, warn)
    return data


def _convert_for_scoring(data: ScoringData, warn: Warn) -> None:
    bench = data.bench
    roots = [data.path.parent, data.path.parent.parent]
    probe = [p for rec in bench.records[:20] for p in rec.images]
    conv = None
    if any(find_image(p, roots) for p in probe):
        conv = convert_benchmark(bench, roots)
    if conv is None or (not conv.samples and all("not found" in reason for _, reason in conv.skipped)):
        warn(
            f"images of {data.path.name} not found beside it: boxes are scored in a 1000x1000 frame per image "
            "(IoU is unchanged by that scaling; --coords resized needs the real images)"
        )
        conv = convert_benchmark(bench, roots, virtual=True)
        data.frame = "norm1000"
    data.samples, data.skipped = conv.samples, conv.skipped
    if data.skipped:
        reasons = Counter(reason.split(":")[0] for _, reason in data.skipped)
        warn(
            f"{len(data.skipped)} benchmark sample(s) cannot be scored image-aware and are left out: "
            + "; ".join(f"{n} x {r}" for r, n in reasons.items())
        )


def _responses_for(items: list[Any], files: list[PredictionFile]) -> dict[str, str]:
    """id -> response for ``items`` (samples or benchmark records), from id-keyed and result files."""
    responses = merge_by_id(files)
    by_task: dict[str, list[Any]] = {}
    for item in items:
        by_task.setdefault(item.task, []).append(item)
    for f in files:
        if f.results is None:
            continue
        for item, response in migbench.match_results(by_task, f.results, f.path):
            if item.id in responses:
                raise MirgError(f"{f.path}: sample {item.id} already has a prediction from another file")
            responses[item.id] = response
    return responses


def _check_coverage(ids: list[str], responses: dict[str, str], warn: Warn) -> int:
    known = set(ids)
    unmatched = [pid for pid in responses if pid not in known]
    if unmatched and len(unmatched) == len(responses):
        raise MirgError(
            f"none of the {len(responses)} prediction ids occur in the data (first: {unmatched[0]!r}); "
            "are these predictions for another dataset?"
        )
    if unmatched:
        warn(f"{len(unmatched)} prediction(s) name ids not in the data and are ignored (first: {unmatched[0]!r})")
    missing = sum(1 for i in ids if i not in responses)
    if missing:
        warn(f"{missing} sample(s) have no prediction and score as wrong")
    return missing


def score_files(
    data_path: str | Path,
    prediction_paths: list[str | Path],
    space: CoordSpace | None = None,
    compat: str | None = None,
    migician_yscale: bool = False,
    warn: Warn = _stderr,
) -> tuple[dict[str, Any], list[SampleScore]]:
    """Score prediction files against a dataset; returns ``(metrics, per-sample scores)``."""
    if compat not in (None, "migbench"):
        raise MirgError(f"unknown --compat mode {compat!r}; the only one is migbench")
    if migician_yscale and compat != "migbench":
        raise MirgError("--migician-yscale applies only with --compat migbench")
    data = load_data(data_path, warn, convert=compat is None)
    files = [read_prediction_file(p) for p in prediction_paths]
    if compat:
        scores, missing = _score_compat(data, files, migician_yscale, warn)
    else:
        space = space or CoordSpace("pixel")
        responses = _responses_for(data.samples, files)
        missing = _check_coverage([s.id for s in data.samples], responses, warn)
        scores = [score_response(s, responses.get(s.id, ""), space) for s in data.samples]
        if not scores:
            raise MirgError(f"{data.path}: no sample could be scored")
    metrics = summarize(scores)
    metrics["overall"].update(_run_info(data, compat, space, missing, migician_yscale))
    return metrics, scores


def _score_compat(
    data: ScoringData, files: list[PredictionFile], yscale: bool, warn: Warn
) -> tuple[list[SampleScore], int]:
    bench = data.bench
    if bench is None:
        raise MirgError("--compat migbench needs a MIG-Bench JSON file as --data")
    if yscale and bench.version != benchfiles.REVISED:
        raise MirgError("--migician-yscale applies to the revised benchmark (0-1000 boxes) only")
    responses = _responses_for(bench.records, files)
    missing = _check_coverage([r.id for r in bench.records], responses, warn)
    scores = [
        score_compat(r, responses[r.id], bench.version, yscale) if r.id in responses else score_compat(r, "", bench.version)
        for r in bench.records
    ]
    return scores, missing


def _run_info(data: ScoringData, compat: str | None, space: CoordSpace | None, missing: int, yscale: bool) -> dict:
    info: dict[str, Any] = {
        "mode": f"compat-{compat}" if compat else "image-aware",
        "missing_predictions": missing,
    }
    if data.bench is not None:
        info["benchmark_version"] = data.bench.version
    if compat:
        info["migician_yscale"] = yscale
    else:
        info["coords"] = space.name if space else "pixel"
        info["frame"] = data.frame
        info["skipped_samples"] = len(data.skipped)
    return info


def write_outputs(metrics: dict, scores: list[SampleScore], out: str | Path, per_sample: str | Path | None) -> None:
    """Write ``metrics.json`` (and the per-sample JSONL when asked), creating folders as needed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if per_sample is not None:
        per_sample = Path(per_sample)
        per_sample.parent.mkdir(parents=True, exist_ok=True)
        with per_sample.open("w", encoding="utf-8") as handle:
            for s in scores:
                handle.write(json.dumps(s.to_json()) + "\n")
