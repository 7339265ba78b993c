"""Dataset plugin 'image_folder': PNG/JPEG/BMP/TIFF images from class folders or a labels.csv, decoded lazily.

Any PIL mode is accepted: 8-bit modes (L, P, RGB, RGBA, CMYK, ...) are scaled by 255; 16-bit greyscale ('I;16*',
and 'I' as PIL opens 16-bit PNGs) by 65535 without going through 8 bits; 'F' is clipped to [0,1] (NaN or Inf
makes the file unusable). The plan's
`channels` then picks greyscale (BT.601 luma) or RGB. Native units are None unless the plan gives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from harness.errors import PlanError
from harness.registry.contracts import DatasetBundle, DatasetContext, Modality, NativeUnits
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.readers.medical_io import (
    FileInfo,
    FileProblem,
    MedicalParams,
    Scan,
    finite_or_problem,
    load_bundle,
    short_reason,
    tally,
)

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
GREY_8BIT = ("L", "1", "LA", "La")


@dataclass
class ImageFolderParams(MedicalParams):
    """Parameters of the image-folder data set (see MedicalParams for the shared ones)."""

    extensions: list[str] = field(default_factory=lambda: [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"])
    native_per_unit: float | None = field(default=None, metadata={"gt": 0})  # native units per 1.0 of [0,1]
    native_unit: str | None = None
    modality: Modality | None = None  # e.g. MRI: lets the plan use that modality's corruptions
    pixel_spacing_mm: float | None = field(default=None, metadata={"gt": 0})  # of the images as loaded (resized)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.native_per_unit is None) != (self.native_unit is None):
            raise PlanError("give both native_per_unit and native_unit, or neither", key="dataset.native_per_unit")


def pil_to_unit(image: Image.Image) -> np.ndarray:
    """A PIL image as float32 C×H×W in [0,1]: one channel for greyscale modes, three (RGB) otherwise."""
    mode = image.mode
    if mode in SIXTEEN_BIT:
        return (np.clip(np.asarray(image, dtype=np.float32), 0, 65535) / 65535.0)[None]
    if mode == "F":
        return np.clip(finite_or_problem(np.asarray(image, dtype=np.float32)), 0, 1)[None]
    if mode in GREY_8BIT:
        return (np.asarray(image.convert("L"), dtype=np.float32) / 255.0)[None]
    rgb = image if mode == "RGB" else image.convert("RGB")
    return (np.asarray(rgb, dtype=np.float32) / 255.0).transpose(2, 0, 1).copy()


def load_complete(image: Image.Image) -> None:
    """Decode every pixel, refusing truncated files even where another library (WeasyPrint) let PIL accept them."""
    accepting = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = accepting


class ImageReader:
    """Reads image files with PIL (first frame of multi-page files)."""

    def inspect(self, path: Path) -> FileInfo:
        """Open the header: format, mode and size (decoding happens in read)."""
        with self._open(path) as image:
            return FileInfo(frames=[None], meta={"format": image.format or "unknown", "mode": image.mode})

    def read(self, path: Path, frame: int | None) -> np.ndarray:
        """Decode the image to float32 C×H×W in [0,1]."""
        with self._open(path) as image:
            try:
                load_complete(image)
                return pil_to_unit(image)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise FileProblem(f"cannot decode the {image.format or ''} image: {short_reason(exc, path)}") \
                    from None

    @staticmethod
    def _open(path: Path) -> Image.Image:
        try:
            return Image.open(path)
        except FileNotFoundError:
            raise FileProblem("file not found") from None
        except UnidentifiedImageError:
            raise FileProblem("not an image file PIL can read") from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise FileProblem(f"unreadable image: {short_reason(exc, path)}") from None


def describe(params: ImageFolderParams, result: Scan) -> tuple[NativeUnits | None, dict[str, Any]]:
    """Native units from the plan (if given) and image-format provenance."""
    units = None
    if params.native_per_unit is not None:
        units = NativeUnits(params.native_per_unit, params.native_unit or "", "from the plan")
    return units, {"format": "image files", "file_formats": tally(result.metas, "format"),
                   "modes": tally(result.metas, "mode")}


class ImageFolderDataset:
    """Dataset plugin 'image_folder': image files with labels from class folders or a labels.csv."""

    name = "image_folder"
    description = ("PNG/JPEG/BMP/TIFF images from class folders or a labels.csv (split and patient/group columns); "
                   "any PIL mode to 1 or 3 channels, resized; decoded lazily; ids hashed.")
    identifiers = "from_source"
    Params = ImageFolderParams

    def load(self, params: ImageFolderParams, context: DatasetContext) -> DatasetBundle:
        """Scan every file once (validate, hash), split by group, and return lazily decoding splits."""
        extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in params.extensions}
        bundle = load_bundle(self.name, params, context, ImageReader(),
                             accept=lambda p: p.suffix.lower() in extensions,
                             default_grouping="none: each image is its own group (give a patient/group column)",
                             describe=lambda result: describe(params, result))
        bundle.modality, bundle.pixel_spacing_mm = params.modality, params.pixel_spacing_mm
        return bundle


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the image_folder dataset."""
    return [ImageFolderDataset()]
