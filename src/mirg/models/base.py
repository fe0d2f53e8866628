"""What every model family must tell the rest of mirg: processor, prompt, coordinate space, pixel limits.

Rewards, scoring, training and evaluation ask a :class:`ModelAdapter`; nothing else knows a family's
quirks (which processor class works without torchvision, which coordinate space its boxes are in, which
modules form its vision tower).

>>> adapter = ModelAdapter(family="demo", model_types=("demo",), coords="norm1000",
...                        min_pixels=3136, max_pixels=50176, vision_module_prefixes=("visual",))
>>> adapter.coord_space().name
'norm1000'
>>> adapter.reward_options()
{'coords': 'norm1000', 'min_pixels': 3136, 'max_pixels': 50176}
>>> adapter.with_pixels(max_pixels=100352).max_pixels
100352
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.errors import MirgError, first_line
from mirg.geometry import CoordSpace
from mirg.prompts import user_message

CHAT_TEMPLATE_FILE = "chat_template.jinja"


def has_torchvision() -> bool:
    """True when torchvision imports; transformers' fast image/video processors need it."""
    return importlib.util.find_spec("torchvision") is not None


@dataclass(frozen=True)
class ModelAdapter:
    """One model family: how to load it, what it sees and which coordinates it speaks.

    Subclasses implement :meth:`build_processor` and name the model class; the fields are data.
    """

    family: str
    model_types: tuple[str, ...]
    coords: str
    min_pixels: int
    max_pixels: int
    vision_module_prefixes: tuple[str, ...]
    description: str = ""

    # -- coordinates and rewards -------------------------------------------------------------------
    def coord_space(self) -> CoordSpace:
        """The space this family's boxes are written in (``resized`` uses this adapter's pixel limits)."""
        return CoordSpace(self.coords, self.min_pixels, self.max_pixels)

    def reward_options(self) -> dict[str, Any]:
        """Keyword options for :func:`mirg.rewards.build_rewards` so rewards read boxes as this family writes them."""
        return {"coords": self.coords, "min_pixels": self.min_pixels, "max_pixels": self.max_pixels}

    def with_pixels(self, min_pixels: int | None = None, max_pixels: int | None = None) -> "ModelAdapter":
        """A copy with other pixel limits (a recipe's ``min_pixels``/``max_pixels``); None keeps the current one."""
        changed = dataclasses.replace(
            self,
            min_pixels=self.min_pixels if min_pixels is None else int(min_pixels),
            max_pixels=self.max_pixels if max_pixels is None else int(max_pixels),
        )
        changed.coord_space()  # validates 0 < min <= max with a one-line message
        return changed

    def user_message(self, question: str, num_images: int) -> list[dict[str, Any]]:
        """The prompt for this family: the shared prompt asking for boxes in this family's space."""
        return user_message(question, num_images, self.coords)

    # -- loading -----------------------------------------------------------------------------------
    def for_folder(self, folder: Path) -> "ModelAdapter":
        """This adapter with whatever the saved model folder says about it (pixel limits); default: as is."""
        return self

    def check_folder(self, path: str | Path) -> Path:
        """Fail with one line unless ``path`` holds a model config and everything a processor needs."""
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise MirgError(f"{folder}: not a model folder (no config.json)")
        missing = []
        if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            missing.append("tokenizer")
        if image_processor_config(folder) is None:
            missing.append("image processor config")
        if missing:
            raise MirgError(
                f"{folder}: model folder has no processor ({' and '.join(missing)} missing); save the processor "
                "with the model (processor.save_pretrained) or copy its files from the base model"
            )
        return folder

    def load_processor(self, path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
        """The family's processor built explicitly from ``path`` (never ``AutoProcessor``).

        Without torchvision, ``AutoProcessor`` silently returns only the tokenizer; here the PIL image
        processor is used and no video processor is loaded. ``min_pixels``/``max_pixels`` default to the
        adapter's limits.
        """
        folder = self.check_folder(path)
        limits = self.with_pixels(min_pixels, max_pixels)
        try:
            return self.build_processor(folder, limits.min_pixels, limits.max_pixels)
        except MirgError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a broken tokenizer.json, preprocessor config, ...
            raise MirgError(f"{folder}: cannot build the {self.family} processor ({first_line(exc)})") from None

    def build_processor(self, folder: Path, min_pixels: int, max_pixels: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def model_class(self):  # pragma: no cover - abstract
        """The transformers class that loads this family's weights."""
        raise NotImplementedError

    def load_model(self, path: str | Path, dtype: str = "float32", device: str | None = None):
        """The model in ``dtype`` (``float32``, ``bfloat16``, ``float16`` or ``auto``) from a local folder,
        on ``device`` (``auto``: the GPU where one is visible; None: where transformers puts it)."""
        import torch

        folder = self.check_folder(path)
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype, None)
        if torch_dtype is None:
            raise MirgError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto")
        from safetensors import SafetensorError

        try:
            model, info = self.model_class().from_pretrained(str(folder), dtype=torch_dtype, output_loading_info=True)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
            # weights missing, cut short by a copy or download, or of another shape than config.json says
            raise MirgError(f"{folder}: cannot load the {self.family} weights ({first_line(exc)})") from None
        check_loaded_weights(folder, info)
        return model if device is None else model.to(resolve_device(device))

    def vision_parameters(self, model) -> list[tuple[str, Any]]:
        """``(name, parameter)`` of the vision tower, matched by :attr:`vision_module_prefixes`."""
        return [
            (name, param)
            for name, param in model.named_parameters()
            if any(_has_prefix(name, prefix) for prefix in self.vision_module_prefixes)
        ]


def check_loaded_weights(folder: Path, info: dict[str, Any]) -> None:
    """Refuse a model whose checkpoint does not cover its config: transformers fills a missing or misshapen weight
    with random values and only prints a report, so an evaluation or a training run would go on with them."""
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys") or [])  # (key, shapes)
    if missing or mismatched:
        what = [f"{len(missing)} missing (first: {missing[0]})"] if missing else []
        what += [f"{len(mismatched)} of another shape (first: {mismatched[0]})"] if mismatched else []
        raise MirgError(f"{folder}: the weights do not match config.json: {' and '.join(what)}; a checkpoint cut "
                        "short, or a config.json of another model size")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` where a GPU is visible, else ``cpu``; a named device must be usable here.

    >>> resolve_device("cpu")
    'cpu'
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MirgError(f"--device {device}: no GPU is visible here (use --device cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise MirgError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def _has_prefix(name: str, prefix: str) -> bool:
    """True when the dotted parameter ``name`` contains the module path ``prefix`` (LoRA wrappers add heads)."""
    return name.startswith(prefix + ".") or f".{prefix}." in name


def read_chat_template(folder: Path) -> str | None:
    """The chat template saved with a model: ``chat_template.jinja``, else the tokenizer config's, else None."""
    jinja = folder / CHAT_TEMPLATE_FILE
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        file = folder / name
        if file.is_file():
            template = json.loads(file.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(template, str):
                return template
    return None


def read_json(file: Path) -> dict:
    """A JSON object from ``file``; {} when the file is missing, a one-line error when it is broken."""
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MirgError(f"{file}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def image_processor_config(folder: Path) -> dict | None:
    """The saved image processor settings: ``preprocessor_config.json`` (hub layout) or the
    ``image_processor`` entry of ``processor_config.json`` (transformers 5 layout); None when neither."""
    legacy = folder / "preprocessor_config.json"
    if legacy.is_file():
        return read_json(legacy)
    combined = folder / "processor_config.json"
    if combined.is_file():
        entry = read_json(combined).get("image_processor")
        return entry if isinstance(entry, dict) else None
    return None


def read_pixel_limits(folder: Path) -> tuple[int | None, int | None]:
    """``(min_pixels, max_pixels)`` of a saved Qwen-style image processor, None where absent."""
    config = image_processor_config(folder) or {}
    size = config.get("size") if isinstance(config.get("size"), dict) else {}
    low = config.get("min_pixels") or size.get("shortest_edge")
    high = config.get("max_pixels") or size.get("longest_edge")
    return low, high


def write_max_pixels(folder: Path, max_pixels: int) -> None:
    """Cap the saved Qwen-style image processor of ``folder`` at ``max_pixels``: every larger image is resized down to
    it when the model is loaded. A model trained on one image size sees only that many patches; a larger image let
    through whole gives it a position grid it never saw (the embedded base found 4% of 224-px objects uncapped,
    98% capped at its 112 px).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "preprocessor_config.json").write_text('{"size": {"longest_edge": 50176, "shortest_edge": 3136}}')
    >>> write_max_pixels(folder, 12544); read_pixel_limits(folder)
    (3136, 12544)
    """
    legacy, combined = folder / "preprocessor_config.json", folder / "processor_config.json"
    file = legacy if legacy.is_file() else combined
    whole = read_json(file)
    config = whole if file == legacy else whole.get("image_processor")
    if not isinstance(config, dict):
        raise MirgError(f"{folder}: no saved image processor to cap at {max_pixels} pixels")
    low, _ = read_pixel_limits(folder)
    if low is not None and max_pixels < low:
        raise MirgError(f"{folder}: max_pixels {max_pixels} is below the processor's min_pixels {low}")
    if isinstance(config.get("size"), dict):
        config["size"]["longest_edge"] = max_pixels
    if "max_pixels" in config or not isinstance(config.get("size"), dict):
        config["max_pixels"] = max_pixels
    file.write_text(json.dumps(whole, indent=2) + "\n", encoding="utf-8")
