"""`mirg eval` as a library call: generate (resumable), score, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mirg.errors import MirgError
from mirg.eval.generate import GenerationSettings, generate_predictions
from mirg.geometry import CoordSpace
from mirg.eval.predictions import read_predictions_jsonl
from mirg.schema import Sample, check_image_files, manifest_path, read_manifest
from mirg.eval.score_files import write_outputs
from mirg.eval.scoring import score_response, summarize


def load_eval_data(data: str | Path, limit: int | None) -> tuple[list[Sample], Path]:
    """The samples to evaluate (the first ``limit`` if given) and the folder their image paths start from."""
    path = manifest_path(data)
    samples = read_manifest(path)
    if limit is not None:
        if limit < 1:
            raise MirgError("--max-samples must be at least 1")
        samples = samples[:limit]
    problems = check_image_files(samples, path.parent)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise MirgError("; ".join(problems[:3]) + more)
    return samples, path.parent


def score_run(samples: list[Sample], responses: dict[str, str], space: CoordSpace) -> tuple[dict[str, Any], list]:
    scores = [score_response(s, responses.get(s.id, ""), space) for s in samples]
    metrics = summarize(scores)
    metrics["overall"]["missing_predictions"] = sum(1 for s in samples if s.id not in responses)
    return metrics, scores


def claim_run_folder(out: Path, identity: dict[str, Any]) -> None:
    """Record what ``out``'s predictions are made with (``run.json``); refuse to resume predictions made
    with another model, data or generation settings, which would silently mix two runs in one score."""
    from mirg.folders import check_output_folder

    check_output_folder(out, "--out", ["run.json", "predictions.jsonl"],
                        "predictions.jsonl, metrics.json, per_sample.jsonl and report files")
    record, predictions = out / "run.json", out / "predictions.jsonl"
    if record.is_file() and predictions.is_file() and predictions.stat().st_size:
        try:
            before = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = {}
        changed = [key for key in identity if before.get(key) != identity[key]]
        if changed:
            raise MirgError(f"{out} holds predictions made with another {', '.join(changed)} "
                            f"({', '.join(str(before.get(k)) for k in changed)}); resuming would mix two runs — "
                            "choose a new --out or remove that folder")
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")


def evaluate(model: str | Path, data: str | Path, out: str | Path, settings: GenerationSettings,
             limit: int | None = None, coords: str | None = None, title: str | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Generate predictions for ``data`` with ``model`` into ``out``, then write metrics and the report."""
    from mirg.models.base import resolve_device
    from mirg.models.registry import adapter_for, resolve_model_path

    model_dir = resolve_model_path(model)
    adapter = adapter_for(model_dir)
    if settings.backend == "hf":
        resolve_device(settings.device)  # an unusable --device is refused before data or weights are read
    samples, root = load_eval_data(data, limit)
    out = Path(out)
    claim_run_folder(out, {"model": str(model_dir.resolve()), "data": str(manifest_path(data).resolve()),
                           "max_new_tokens": settings.max_new_tokens, "backend": settings.backend,
                           "dtype": settings.dtype})
    generate_predictions(model_dir, samples, root, out / "predictions.jsonl", settings, progress)
    space = CoordSpace(coords, adapter.min_pixels, adapter.max_pixels) if coords else adapter.coord_space()
    notes = [f"model: {model} ({adapter.family}, boxes read as {space.name}); data: {data}; {len(samples)} samples"]
    return score_and_report(samples, root, out, space, {"model": str(model), "data": str(data)},
                            title or f"Evaluation of {Path(str(model)).name}", notes, model_dir)


def score_and_report(samples: list[Sample], root: Path, out: Path, space: CoordSpace, info: dict[str, Any],
                     title: str, notes: list[str], model_dir: Path | None = None) -> dict[str, Any]:
    """Score ``out/predictions.jsonl`` (boxes read in ``space``), write ``metrics.json`` (with ``info`` in its
    overall row), ``per_sample.jsonl`` and the report; every backend ends here, so all score alike."""
    from mirg.eval.report import write_report

    responses = read_predictions_jsonl(out / "predictions.jsonl")
    metrics, scores = score_run(samples, responses, space)
    metrics["overall"].update({**info, "coords": space.name})
    write_outputs(metrics, scores, out / "metrics.json", out / "per_sample.jsonl")
    write_report(out, title, samples, scores, metrics, root, model_dir=model_dir, notes=notes, responses=responses)
    return metrics
