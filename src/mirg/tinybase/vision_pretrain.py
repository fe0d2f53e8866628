"""A dense perception stage for a tiny model's vision tower, in plain PyTorch.

A pretrained VLM's vision tower already turns each image patch into features that say *what* is there
and *where*. A tiny tower trained from scratch only through next-token loss on a few coordinate tokens
learns that far too slowly on a CPU: the signal per sample is four numbers. This stage gives it the
dense signal instead, the way detectors are trained: every image token (the features the language
model receives) predicts, through one linear layer, whether an object's centre lies in its cell, whether
that object is outlined (the marked families point at objects that way), its colour and shape, and its box. Each box coordinate is predicted the way the language model will
have to write it: as a vector scored against the model's own embeddings of the number tokens (in the
family's coordinate space), so that a single linear map — what an attention head does — turns the
token's features into the right number. The head is thrown away afterwards; what stays is a tower whose
token features carry object, class and box, which the language model then learns to read and put into
words in ordinary SFT.

Families: Qwen-VL (merged patch tokens, row-major) and LLaVA (CLIP patch tokens, row-major).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mirg.errors import MirgError
from mirg.schema import Sample, read_manifest

#: Largest coordinate with a number token of its own (see mirg.architectures.tokenizer).
MAX_NUMBER = 1000


@dataclass(frozen=True)
class Vocab:
    """The colour and shape words the head predicts (read from the annotations' attributes)."""

    colors: tuple[str, ...]
    shapes: tuple[str, ...]

    @classmethod
    def from_samples(cls, samples: Sequence[Sample]) -> "Vocab":
        colors, shapes = set(), set()
        for s in samples:
            for objs in s.objects or []:
                for o in objs:
                    colors.add(str(o.attributes.get("color", o.label.split()[0])))
                    shapes.add(str(o.attributes.get("shape", o.label.split()[-1])))
        if not colors:
            raise MirgError("the vision stage needs object annotations (objects with labels and boxes)")
        return cls(tuple(sorted(colors)), tuple(sorted(shapes)))


def cell_targets(objects, size: tuple[int, int], grid: tuple[int, int], vocab: Vocab,
                 space=None) -> list[dict | None]:
    """Per token (row-major over ``grid``): the object whose box centre falls in its cell, or None.

    ``box`` holds the coordinates as the model writes them (integers in ``space``, default pixels).

    >>> from mirg.schema import ObjectAnn
    >>> from mirg.geometry import CoordSpace
    >>> v = Vocab(("red",), ("circle",))
    >>> t = cell_targets([ObjectAnn("red circle", (30, 2, 50, 20))], (112, 112), (4, 4), v, CoordSpace("norm1000"))
    >>> [i for i, c in enumerate(t) if c], t[1]["box"]
    ([1], [268, 18, 446, 179])
    """
    from mirg.geometry import CoordSpace, round_box

    space = space or CoordSpace("pixel")
    gh, gw = grid
    width, height = size
    cells: list[dict | None] = [None] * (gh * gw)
    for o in sorted(objects, key=lambda o: -(o.bbox[2] - o.bbox[0]) * (o.bbox[3] - o.bbox[1])):
        cx, cy = (o.bbox[0] + o.bbox[2]) / 2, (o.bbox[1] + o.bbox[3]) / 2
        index = min(int(cy / height * gh), gh - 1) * gw + min(int(cx / width * gw), gw - 1)
        if cells[index] is None:
            color = str(o.attributes.get("color", o.label.split()[0]))
            shape = str(o.attributes.get("shape", o.label.split()[-1]))
            box = [min(max(v, 0), MAX_NUMBER) for v in round_box(space.from_pixels(o.bbox, size))]
            cells[index] = {"color": vocab.colors.index(color), "shape": vocab.shapes.index(shape), "box": box,
                            "outlined": bool(o.attributes.get("outlined", False))}
    return cells


class TokenFeatures:
    """The image tokens a family's language model receives, as ``(images, tokens, hidden)`` + grid."""

    def __init__(self, model, processor, family: str):
        self.model, self.processor, self.family = model, processor, family

    def __call__(self, images: list) -> tuple[Any, tuple[int, int]]:
        import torch

        inputs = self.processor.image_processor(images, return_tensors="pt").to(self.model.device)
        if self.family == "llava":
            feats = self.model.model.get_image_features(inputs["pixel_values"]).pooler_output
            feats = torch.stack(list(feats)) if isinstance(feats, (list, tuple)) else feats
            side = int(round(feats.shape[1] ** 0.5))
            return feats, (side, side)
        out = self.model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        merge = self.model.model.visual.spatial_merge_size
        _, h, w = (int(v) for v in inputs["image_grid_thw"][0])
        return torch.stack(list(out.pooler_output)), (h // merge, w // merge)


def number_table(model, tokenizer):
    """The model's embeddings of the number tokens 0..MAX_NUMBER (a fixed copy: the stage reads them)."""
    ids = tokenizer.convert_tokens_to_ids([str(v) for v in range(MAX_NUMBER + 1)])
    return model.get_input_embeddings().weight[ids].detach().clone()


def word_table(model, tokenizer, words: Sequence[str]):
    """The model's embeddings of ``words`` as written after a space, or None where one is not a single token."""
    tokens = [tokenizer.tokenize(" " + w) for w in words]
    if any(len(t) != 1 for t in tokens):
        return None
    ids = tokenizer.convert_tokens_to_ids([t[0] for t in tokens])
    return model.get_input_embeddings().weight[ids].detach().clone()


class DenseHead:
    """One linear layer over token features: objectness, colour, shape, and 4 coordinate vectors.

    With ``words`` (the embeddings of the colour words, then the shape words), colour and shape are
    predicted like the coordinates: as vectors scored against the words the language model will write.
    """

    def __init__(self, hidden: int, vocab: Vocab, numbers, words=None):
        import torch

        self.vocab, self.numbers, self.hidden, self.words = vocab, numbers, hidden, words
        self.classes = 2 + len(vocab.colors) + len(vocab.shapes)  # objectness, outlined, colour, shape
        width = 2 + 2 * hidden if words is not None else self.classes
        self.linear = torch.nn.Linear(hidden, width + 4 * hidden, device=numbers.device)
        self.width = width

    def __call__(self, feats):
        """``(tokens, classes)`` logits and ``(tokens, 4, numbers)`` coordinate logits."""
        import torch

        out = self.linear(feats.reshape(-1, self.hidden))
        coords = out[:, self.width :].reshape(-1, 4, self.hidden) @ self.numbers.T
        if self.words is None:
            return out[:, : self.classes], coords
        nc, h = len(self.vocab.colors), self.hidden
        color = out[:, 2 : 2 + h] @ self.words[:nc].T
        shape = out[:, 2 + h : 2 + 2 * h] @ self.words[nc:].T
        return torch.cat([out[:, :2], color, shape], dim=1), coords

    def parameters(self):
        return self.linear.parameters()


def head_loss(head: DenseHead, feats, cells: list[list[dict | None]]) -> tuple[Any, dict[str, float]]:
    """Objectness (BCE, every token) + colour, shape and each coordinate (CE) on tokens holding an object."""
    import torch
    import torch.nn.functional as F

    vocab = head.vocab
    flat, coord_logits = head(feats)
    targets = [c for per_image in cells for c in per_image]
    device = flat.device
    has = torch.tensor([c is not None for c in targets], device=device)
    nc = len(vocab.colors)
    obj_loss = F.binary_cross_entropy_with_logits(flat[:, 0], has.float())
    pos = flat[has]
    chosen = [c for c in targets if c is not None]
    if not chosen:
        return obj_loss, {"objectness": float(obj_loss)}
    color = torch.tensor([c["color"] for c in chosen], device=device)
    shape = torch.tensor([c["shape"] for c in chosen], device=device)
    outlined = torch.tensor([float(c["outlined"]) for c in chosen], device=device)
    box = torch.tensor([c["box"] for c in chosen], device=device)
    outline_loss = F.binary_cross_entropy_with_logits(pos[:, 1], outlined)
    color_loss = F.cross_entropy(pos[:, 2 : 2 + nc], color)
    shape_loss = F.cross_entropy(pos[:, 2 + nc :], shape)
    box_loss = F.cross_entropy(coord_logits[has].reshape(-1, coord_logits.shape[-1]), box.reshape(-1))
    total = obj_loss + outline_loss + color_loss + shape_loss + box_loss
    return total, {"objectness": float(obj_loss.detach()), "outlined": float(outline_loss.detach()),
                   "color": float(color_loss.detach()), "shape": float(shape_loss.detach()),
                   "box": float(box_loss.detach())}


def load_batch(samples: Sequence[Sample], root: Path) -> list:
    from PIL import Image

    images = []
    for s in samples:
        for rel in s.images:
            with Image.open(root / rel) as img:
                images.append(img.convert("RGB"))
    return images


def batch_cells(samples: Sequence[Sample], grid: tuple[int, int], vocab: Vocab, space) -> list[list[dict | None]]:
    return [cell_targets(objs, size, grid, vocab, space)
            for s in samples for objs, size in zip(s.objects or [], s.image_sizes)]


@dataclass
class VisionStageResult:
    steps: int
    images: int
    wall_s: float
    last_losses: dict[str, float]
    heldout: dict[str, float]


def evaluate_head(features: TokenFeatures, head: DenseHead, samples: Sequence[Sample], root: Path,
                  space) -> dict[str, float]:
    """On held-out images: objectness accuracy, colour/shape accuracy and mean box IoU on object tokens."""
    import torch

    from mirg.geometry import iou

    vocab, nc = head.vocab, len(head.vocab.colors)
    hits = {"objectness": 0, "outlined": 0, "color": 0, "shape": 0}
    tokens = objects = 0
    iou_sum = 0.0
    with torch.no_grad():
        for start in range(0, len(samples), 64):
            chunk = samples[start : start + 64]
            feats, grid = features(load_batch(chunk, root))
            logits, coords = head(feats)
            targets = [c for per in batch_cells(chunk, grid, vocab, space) for c in per]
            for row, coord, target in zip(logits, coords, targets):
                tokens += 1
                hits["objectness"] += int((row[0] > 0).item() == (target is not None))
                if target is None:
                    continue
                objects += 1
                hits["outlined"] += int((row[1] > 0).item() == target["outlined"])
                hits["color"] += int(int(row[2 : 2 + nc].argmax()) == target["color"])
                hits["shape"] += int(int(row[2 + nc :].argmax()) == target["shape"])
                iou_sum += iou(coord.argmax(-1).tolist(), target["box"])
    return {"objectness_acc": hits["objectness"] / max(tokens, 1), "outlined_acc": hits["outlined"] / max(objects, 1),
            "color_acc": hits["color"] / max(objects, 1), "shape_acc": hits["shape"] / max(objects, 1),
            "box_mean_iou": iou_sum / max(objects, 1)}


def train_vision(model_dir: Path, data: Path, out: Path, minutes: float, lr: float = 1e-3, batch_size: int = 64,
                 seed: int = 0, heldout: int = 256, progress: bool = True, device: str = "auto",
                 word_targets: bool = False) -> VisionStageResult:
    """Train the vision tower (and its projector) of the model in ``model_dir`` with the dense head for
    ``minutes`` on ``device`` (``auto``: the GPU where one is visible); save the whole model with its
    processor to ``out``. ``word_targets``: score colour and shape against the model's embeddings of
    those words (as the coordinates are scored against the number tokens'), where each is one token."""
    import torch
    from tqdm import tqdm

    from mirg.models.registry import adapter_for

    adapter = adapter_for(model_dir)
    if adapter.family not in ("qwen3_vl", "qwen2_5_vl", "qwen2_vl", "llava"):
        raise MirgError(f"no vision stage for family {adapter.family}")
    processor = adapter.load_processor(model_dir)
    model = adapter.load_model(model_dir, device=device)
    samples = read_manifest(data)
    root = Path(data) if Path(data).is_dir() else Path(data).parent
    vocab = Vocab.from_samples(samples)
    random.Random(seed).shuffle(samples)
    test, train = samples[:heldout], samples[heldout:]
    if not train:
        raise MirgError(f"{data}: too few samples for the vision stage (need more than {heldout})")
    torch.manual_seed(seed)
    features = TokenFeatures(model, processor, adapter.family)
    space = adapter.coord_space()
    words = word_table(model, processor.tokenizer, vocab.colors + vocab.shapes) if word_targets else None
    if word_targets and words is None:
        raise MirgError("--word-targets: a colour or shape word is more than one token in this tokenizer")
    head = DenseHead(model.config.get_text_config().hidden_size, vocab, number_table(model, processor.tokenizer),
                     words)
    vision = [p for name, p in model.named_parameters() if _is_vision(name)]
    optimizer = torch.optim.AdamW(vision + list(head.parameters()), lr=lr, weight_decay=0.01)
    deadline, start = time.monotonic() + 60 * minutes, time.monotonic()
    steps, seen, losses = 0, 0, {}
    bar = tqdm(desc="vision stage", unit="img", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    model.train()
    while time.monotonic() < deadline:
        batch = [train[(seen + i) % len(train)] for i in range(batch_size)]
        feats, grid = features(load_batch(batch, root))
        loss, losses = head_loss(head, feats, batch_cells(batch, grid, vocab, space))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vision, 1.0)
        optimizer.step()
        steps, seen = steps + 1, seen + batch_size
        bar.update(batch_size)
        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
    bar.close()
    model.eval()
    scores = evaluate_head(features, head, test, root, space)
    out.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(str(out))
    processor.save_pretrained(str(out))
    result = VisionStageResult(steps, seen, round(time.monotonic() - start, 1), losses, scores)
    (out / "vision_stage.json").write_text(json.dumps(result.__dict__, indent=2) + "\n", encoding="utf-8")
    return result


def _is_vision(name: str) -> bool:
    """Parameters of the vision tower and of what maps it into the language model."""
    return any(part in name for part in (".visual.", "vision_tower.", "multi_modal_projector."))
