"""The one home of resizing images to the model's square size: pad (letterbox), crop or stretch, in torch.

Every reader (image_folder, dicom, npz) resizes through `resize`; the plan's `dataset.resize: {mode, method}`
says how. Without a mode, an image whose aspect ratio differs from the square's by more than ASPECT_TOLERANCE is
padded (letterboxed with black bars, centred) so the anatomy keeps its proportions; within the tolerance it is
stretched (the distortion is below 2 %). `crop` takes the central square, `stretch` distorts the aspect ratio.
The interpolation runs in torch (torch.nn.functional.interpolate, align_corners=False): `bilinear` (antialiased
when shrinking, the default) or `area` (averaging, as PIL's reduce or OpenCV's INTER_AREA). `Geometry` counts what
was done to each source size, for the manifest and the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

ASPECT_TOLERANCE = 0.02  # relative difference of aspect ratios above which the default mode pads
MODES = ("pad", "crop", "stretch")


@dataclass
class ResizeParams:
    """How images are brought to image_size × image_size (default mode: pad when the aspect differs > 2 %)."""

    mode: Literal["pad", "crop", "stretch"] | None = None
    method: Literal["bilinear", "area"] = "bilinear"


def aspect_differs(height: int, width: int, target_h: int, target_w: int) -> bool:
    """Whether the two aspect ratios differ by more than ASPECT_TOLERANCE (relative)."""
    return abs((width / height) / (target_w / target_h) - 1.0) > ASPECT_TOLERANCE


def chosen_mode(height: int, width: int, size: int, params: ResizeParams) -> str:
    """The mode applied to one image: the plan's, or pad/stretch by the aspect rule."""
    if params.mode is not None:
        return params.mode
    return "pad" if aspect_differs(height, width, size, size) else "stretch"


def _interpolate(x: torch.Tensor, out_hw: tuple[int, int], method: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == out_hw:
        return x
    if method == "area":
        return F.interpolate(x, size=out_hw, mode="area")
    shrinking = x.shape[-2] > out_hw[0] or x.shape[-1] > out_hw[1]
    return F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=shrinking)


def resize_tensor(x: torch.Tensor, size: int, mode: str, method: str) -> torch.Tensor:
    """N×C×H×W → N×C×size×size by `mode` (pad, crop, stretch) and `method` (bilinear, area)."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if mode == "stretch" or height == width:
        return _interpolate(x, (size, size), method)
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return _interpolate(x[..., top:top + side, left:left + side], (size, size), method)
    scale = size / max(height, width)  # pad: the longer side fills the square, the shorter is letterboxed
    inner = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = _interpolate(x, inner, method)
    top, left = (size - inner[0]) // 2, (size - inner[1]) // 2
    return F.pad(small, (left, size - inner[1] - left, top, size - inner[0] - top), value=0.0)


def resize(image: np.ndarray, size: int | None, params: ResizeParams | None = None) -> np.ndarray:
    """One C×H×W float image to size×size (unchanged without a size or when already square at that size),
    clipped to [0,1]."""
    if size is None or image.shape[1:] == (size, size):
        return image
    params = params or ResizeParams()
    mode = chosen_mode(image.shape[1], image.shape[2], size, params)
    out = resize_tensor(torch.from_numpy(np.ascontiguousarray(image))[None], size, mode, params.method)[0]
    return out.clamp_(0.0, 1.0).numpy()


def describe_method(method: str) -> str:
    """The interpolation in words, for provenance."""
    return ("bilinear in torch (torch.nn.functional.interpolate, align_corners=False, antialiased when shrinking)"
            if method == "bilinear" else "area averaging in torch (torch.nn.functional.interpolate, mode='area')")


@dataclass
class Geometry:
    """What resizing did, per source size (height, width) and mode; `record` is called once per decoded image."""

    size: int | None
    params: ResizeParams
    seen: Counter = field(default_factory=Counter)

    def record(self, height: int, width: int) -> None:
        """Count one image of this source size."""
        mode = "unchanged" if self.size is None or (height, width) == (self.size, self.size) else \
            chosen_mode(height, width, self.size, self.params)
        self.seen[(height, width, mode)] += 1

    def to_json(self) -> dict[str, Any]:
        """The manifest's `geometry`: sizes, what was done, and one sentence for the report."""
        sizes = sorted({(h, w) for h, w, _ in self.seen})
        done = Counter()
        for (_, _, mode), n in self.seen.items():
            done[mode] += n
        return {"model_size": None if self.size is None else [self.size, self.size],
                "source_sizes": [[h, w] for h, w in sizes[:20]], "n_source_sizes": len(sizes),
                "done": dict(sorted(done.items())), "mode": self.params.mode or "auto (pad when the aspect ratio "
                f"differs by more than {ASPECT_TOLERANCE:.0%}, else stretch)", "method": describe_method(
                    self.params.method), "summary": self.summary()}

    def summary(self) -> str:
        """E.g. 'source 30×20 (width×height) → model 16×16: 12 padded (letterboxed, aspect ratio kept) ...'."""
        sizes = sorted({(h, w) for h, w, _ in self.seen})
        shown = ", ".join(f"{w}×{h}" for h, w in sizes[:3]) + (f" and {len(sizes) - 3} more sizes"
                                                              if len(sizes) > 3 else "")
        if self.size is None:
            return f"source {shown} (width×height): not resized (no image_size)"
        words = {"pad": "padded (letterboxed with black bars, aspect ratio kept)",
                 "crop": "centre-cropped to a square (edges cut off)",
                 "stretch": "stretched (aspect ratio changed)", "unchanged": "already at the model size"}
        done = Counter()
        for (_, _, mode), n in self.seen.items():
            done[mode] += n
        what = "; ".join(f"{n} {words[mode]}" for mode, n in sorted(done.items()))
        method = "bilinear" if self.params.method == "bilinear" else "area"
        return (f"source {shown} (width×height) → model {self.size}×{self.size}: {what}; resized in torch "
                f"({method})")
