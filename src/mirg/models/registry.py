"""Which adapter serves a model: by ``config.json``'s ``model_type``, or by family name.

>>> adapter_for("qwen2_5_vl").coords
'resized'
>>> [a.family for a in supported_adapters()]
['qwen2_5_vl', 'qwen2_vl', 'qwen3_vl', 'llava']
>>> adapter_for("gpt2")
Traceback (most recent call last):
...
mirg.errors.MirgError: unsupported model type 'gpt2'; supported families: qwen2_5_vl, qwen2_vl, qwen3_vl, llava
"""

from __future__ import annotations

import json
from pathlib import Path

from mirg.errors import MirgError
from mirg.models.base import ModelAdapter
from mirg.models.llava import LLAVA
from mirg.models.qwen import QWEN2_5_VL, QWEN2_VL, QWEN3_VL

#: The name that will stand for the model shipped inside the package.
EMBEDDED = "embedded"


def supported_adapters() -> tuple[ModelAdapter, ...]:
    """Every supported family, in the order they are listed to users."""
    return (QWEN2_5_VL, QWEN2_VL, QWEN3_VL, LLAVA)


def supported_families() -> list[str]:
    return [adapter.family for adapter in supported_adapters()]


def _by_model_type(model_type: str) -> ModelAdapter:
    for adapter in supported_adapters():
        if model_type == adapter.family or model_type in adapter.model_types:
            return adapter
    raise MirgError(
        f"unsupported model type {model_type!r}; supported families: {', '.join(supported_families())}"
    )


def read_model_type(folder: Path) -> str:
    """``model_type`` from ``folder/config.json``, with a one-line reason when it can't be read."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise MirgError(f"{folder}: not a model folder (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MirgError(f"{config_file}: not valid JSON ({exc})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise MirgError(f"{config_file}: no model_type")
    return model_type


def adapter_for(path_or_model_type: str | Path) -> ModelAdapter:
    """The adapter for a model folder (read from its ``config.json``) or a ``model_type``/family name.

    For a folder, the adapter carries what the folder says (e.g. the processor's pixel limits).
    """
    path = Path(path_or_model_type)
    if path.is_dir():
        return _by_model_type(read_model_type(path)).for_folder(path)
    text = str(path_or_model_type)
    if "/" in text or text.startswith("."):
        raise MirgError(f"model folder {text} does not exist")
    return _by_model_type(text)


def embedded_model_dir() -> Path:
    """Where the package keeps its embedded base model (``mirg/assets/embedded``)."""
    from importlib.resources import files

    return Path(str(files("mirg") / "assets" / "embedded"))


def resolve_model_path(name: str | Path) -> Path:
    """The folder a model name stands for: ``embedded`` (the base shipped with mirg) or a local folder."""
    if str(name) == EMBEDDED:
        folder = embedded_model_dir()
        if not (folder / "config.json").is_file():
            raise MirgError(
                f"the embedded model is missing from this installation ({folder}); rebuild it with "
                "`mirg model pretrain-tiny --out DIR` and pass --model DIR"
            )
        return folder
    path = Path(name)
    if path.is_dir():
        return path
    raise MirgError(f"model folder {name} does not exist (pass a local folder or 'embedded'; nothing is downloaded)")
