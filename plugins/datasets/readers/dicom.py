"""Dataset plugin 'dicom': DICOM files from class folders or a manifest CSV, decoded lazily with pydicom.

Pixels: decode (any transfer syntax pydicom's installed decoders handle) → modality LUT (rescale slope/intercept,
so CT is in HU; a NaN or Inf value, possible in float pixel data, makes the file unusable) → window to [0,1] with
the plan's {center, width}, the file's own window or VOI LUT (`file`), or the image's min..max (`minmax`) →
MONOCHROME1 inverted → ROI crop (its centre must lie in the image) → channels → resize. The linear window maps
center − width/2 to 0 and center + width/2 to 1, so 1.0 on [0,1] pixels is `width` native units. Colour images
(RGB, YBR, palette) are scaled by their stored range; windows apply to greyscale images only.
Patient ids default to the DICOM PatientID; the core replaces them and the sample ids by keyed hashes
(identifiers = "from_source"). Each split carries bucketed subgroup attributes from the headers (manufacturer, sex,
age_band, slice_thickness; see dicom_metadata) and any manifest `metadata_columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder, pixel_array
from pydicom.uid import UID

from harness.errors import PlanError
from harness.registry.contracts import DatasetBundle, DatasetContext, NativeUnits
from harness.registry.hookspecs import hookimpl
from harness_plugins.datasets.readers.dicom_metadata import header_attributes
from harness_plugins.datasets.readers.geometry import ResizeParams, chosen_mode
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

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
EXTRA_TAGS = [0x00080060, 0x52009229, 0x52009230]  # Modality, shared and per-frame functional groups
UNDEFINED_LENGTH = 0xFFFFFFFF
DICOM_MODALITIES = {"CT": "CT", "MR": "MRI", "MG": "MG", "CR": "XR", "DX": "XR", "US": "US", "PT": "PET"}
# Decoding plugins in order of preference; gdcm last: it aborts the whole process (C++ terminate) on some corrupt
# JPEG data, so it is used only for transfer syntaxes that no other installed plugin decodes.
PLUGIN_PREFERENCE = ("pylibjpeg", "pyjpegls", "pydicom", "pillow")


@dataclass
class WindowParams:
    """An explicit window in native units (HU for CT)."""

    center: float
    width: float = field(metadata={"gt": 0})


@dataclass
class DicomParams(MedicalParams):
    """Parameters of the DICOM data set (see MedicalParams for the shared ones)."""

    window: WindowParams | Literal["file", "minmax"] = "file"
    frames: Literal["middle", "all"] | list[int] = field(default="middle", metadata={"min": 0})
    pattern: str = "*.dcm"  # which files a class-folder layout includes (a manifest lists its own)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.frames, list) and not self.frames:
            raise PlanError("expected 'middle', 'all' or a non-empty list of frame indices", key="dataset.frames")


class DicomReader:
    """Reads DICOM headers and decodes one frame at a time to float32 C×H×W in [0,1]."""

    def __init__(self, window: WindowParams | str, frames: str | list[int]) -> None:
        self.window, self.frames = window, frames
        self.plugins: dict[str, str] = {}  # path → decoding plugin, chosen from the header

    def inspect(self, path: Path) -> FileInfo:
        """Header checks (DICOM, pixel data, transfer syntax, truncation) and the frames to use."""
        ds = read_header(path)
        try:
            info = self.header_info(ds)
        except FileProblem:
            raise
        except Exception as exc:  # noqa: BLE001 - header elements are parsed lazily; corrupt ones raise many types
            raise FileProblem(f"unreadable DICOM header: {short_reason(exc, path)}") from None
        self.plugins[str(path)] = decoding_plugin(ds.file_meta.TransferSyntaxUID)
        return info

    def header_info(self, ds: Dataset) -> FileInfo:
        """The frames to use, patient, instance UID and notes for provenance, from a parsed header."""
        n_frames = int(ds.get("NumberOfFrames") or 1)
        window = file_window(ds, 0)
        meta = {"modality": str(ds.get("Modality") or "unknown"), "syntax": syntax_name(ds.file_meta.TransferSyntaxUID),
                "photometric": str(ds.get("PhotometricInterpretation") or "unknown"), "window": window,
                "rescaled": bool("RescaleSlope" in ds or "ModalityLUTSequence" in ds
                                 or functional_item(ds, 0, "PixelValueTransformationSequence") is not None),
                "pixel_spacing": file_pixel_spacing(ds),
                "shape": (int(ds.get("Rows") or 0), int(ds.get("Columns") or 0))}
        return FileInfo(frames=self.select_frames(n_frames), group=str(ds.get("PatientID") or "").strip() or None,
                        key=str(ds.get("SOPInstanceUID") or "") or None, meta=meta,
                        subgroups=header_attributes(ds))

    def select_frames(self, n_frames: int) -> list[int | None]:
        """None for a single-frame file; the middle, all, or the listed frames of a multi-frame one."""
        if n_frames <= 1:
            return [None]
        if self.frames == "middle":
            return [n_frames // 2]
        if self.frames == "all":
            return list(range(n_frames))
        bad = [k for k in self.frames if k >= n_frames]
        if bad:
            raise FileProblem(f"frame {bad[0]} was asked for but the file has {n_frames} frames (0..{n_frames - 1})")
        return list(dict.fromkeys(self.frames))

    def read(self, path: Path, frame: int | None) -> np.ndarray:
        """Decode one frame (reading only that frame from disk) and map it to [0,1]."""
        meta = Dataset()
        try:
            arr = pixel_array(str(path), index=frame, ds_out=meta, specific_tags=EXTRA_TAGS,
                              decoding_plugin=self.plugins.get(str(path), ""))
        except FileNotFoundError:
            raise FileProblem("file not found") from None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - decoders raise many types on corrupt data (Rust panics are
            # BaseExceptions); each is reported per file
            raise FileProblem(f"cannot decode the {transfer_syntax_of(path)} pixel data: "
                              f"{short_reason(exc, path)}") from None
        try:
            return self.to_unit(meta, arr, frame or 0)
        except FileProblem:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed LUT or window elements
            raise FileProblem(f"cannot apply the modality/VOI transforms: {short_reason(exc, path)}") from None

    def to_unit(self, ds: Dataset, arr: np.ndarray, frame: int) -> np.ndarray:
        """Decoded pixels → float32 C×H×W in [0,1]: colour scaled by its range, greyscale through LUTs and window."""
        photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip()
        if photometric == "PALETTE COLOR":
            arr = apply_color_lut(arr, ds)
        if arr.ndim == 3:
            top = np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" and photometric == "PALETTE COLOR" \
                else 2 ** int(ds.get("BitsStored") or 8) - 1
            return np.clip(arr.astype(np.float32) / top, 0, 1).transpose(2, 0, 1).copy()
        values = finite_or_problem(modality(ds, arr, frame))  # float pixel data may hold NaN or Inf
        unit = self.apply_window(ds, values, frame)
        if photometric == "MONOCHROME1":
            unit = 1.0 - unit
        return unit[None].astype(np.float32)

    def apply_window(self, ds: Dataset, values: np.ndarray, frame: int) -> np.ndarray:
        """The plan's window, the file's window or VOI LUT, or min..max, as values in [0,1]."""
        if isinstance(self.window, WindowParams):
            return linear_window(values, self.window.center, self.window.width)
        if self.window == "minmax":
            lo, hi = float(values.min()), float(values.max())
            return linear_window(values, (lo + hi) / 2, hi - lo) if hi > lo else np.zeros_like(values)
        window = file_window(ds, frame)
        if window is not None:
            return linear_window(values, *window)
        if ds.get("VOILUTSequence"):
            lut = ds.VOILUTSequence[0]
            bits = int(lut.LUTDescriptor[2])
            mapped = apply_voi_lut(np.rint(values).astype(np.int64), ds, prefer_lut=True)  # a LUT indexes integers
            return np.clip(mapped.astype(np.float64) / (2**bits - 1), 0, 1)
        raise FileProblem("the file has no window (WindowCenter/WindowWidth or VOI LUT Sequence); "
                          "set window: {center, width} or window: minmax in the plan")


def read_header(path: Path) -> Dataset:
    """The header (pixel data deferred); FileProblem when the file cannot give an image."""
    try:
        ds = pydicom.dcmread(path, defer_size=1024)
    except FileNotFoundError:
        raise FileProblem("file not found") from None
    except InvalidDicomError:
        raise FileProblem("not a DICOM file (no 'DICM' file header)") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt headers
        raise FileProblem(f"unreadable DICOM header: {short_reason(exc, path)}") from None
    try:
        check_header(ds, path)
    except FileProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - header elements are parsed lazily; corrupt ones raise many types
        raise FileProblem(f"unreadable DICOM header: {short_reason(exc, path)}") from None
    return ds


def check_header(ds: Dataset, path: Path) -> None:
    """Pixel data present, a transfer syntax with an installed decoder, and not truncated."""
    if not any(k in ds for k in PIXEL_KEYWORDS):
        raise FileProblem("no pixel data (the file has no PixelData element)")
    uid = ds.file_meta.get("TransferSyntaxUID")
    if not uid:
        raise FileProblem("no Transfer Syntax UID in the file meta information")
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise FileProblem(f"unsupported transfer syntax {syntax_name(uid)}") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no plugin"
        raise FileProblem(f"no decoder installed for transfer syntax {syntax_name(uid)} ({missing})")
    check_truncated(ds, path)


def decoding_plugin(uid: str) -> str:
    """The first installed plugin of PLUGIN_PREFERENCE for `uid`; '' (pydicom's own order) when none is."""
    try:
        available = get_decoder(uid).available_plugins
    except Exception:  # noqa: BLE001 - read_header has already reported unusable syntaxes
        return ""
    return next((p for p in PLUGIN_PREFERENCE if p in available), "")


def check_truncated(ds: Dataset, path: Path) -> None:
    """A defined-length pixel data element that runs past the end of the file."""
    for keyword in PIXEL_KEYWORDS:
        if keyword not in ds:
            continue
        element = ds.get_item(tag_for_keyword(keyword), keep_deferred=True)  # the raw element, value not read
        length, tell = getattr(element, "length", UNDEFINED_LENGTH), getattr(element, "value_tell", None)
        if length == UNDEFINED_LENGTH or tell is None:
            return
        available = path.stat().st_size - tell
        if available < length:
            raise FileProblem(f"truncated: the pixel data needs {length} bytes but the file ends after {available}")
        return


def syntax_name(uid: str) -> str:
    """E.g. 'RLE Lossless (1.2.840.10008.1.2.5)'; an unknown UID is shown once."""
    uid = UID(str(uid))
    return f"{uid.name} ({uid})" if uid.name != str(uid) else f"'{uid}'"


def transfer_syntax_of(path: Path) -> str:
    """The transfer syntax of a file, for messages."""
    try:
        return syntax_name(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    except Exception:  # noqa: BLE001 - only used to word an error
        return "(unknown transfer syntax)"


def functional_item(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """The first item of `sequence` in a multi-frame file's per-frame group for `frame`, else its shared group."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if items and index < len(items) and items[index].get(sequence):
            return items[index].get(sequence)[0]
    return None


def modality(ds: Dataset, arr: np.ndarray, frame: int) -> np.ndarray:
    """The modality LUT (or rescale slope/intercept, also from functional groups) as float64 values."""
    if ds.get("ModalityLUTSequence") or "RescaleSlope" in ds:
        return apply_modality_lut(arr, ds).astype(np.float64)
    item = functional_item(ds, frame, "PixelValueTransformationSequence")
    values = arr.astype(np.float64)
    if item is not None and "RescaleSlope" in item:
        values = values * float(item.RescaleSlope) + float(item.get("RescaleIntercept") or 0.0)
    return values


def file_window(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """(center, width) from WindowCenter/WindowWidth (first value if several), also from functional groups."""
    source = ds if "WindowCenter" in ds and "WindowWidth" in ds else functional_item(ds, frame, "FrameVOILUTSequence")
    if source is None or "WindowCenter" not in source or "WindowWidth" not in source:
        return None
    center, width = _first(source.WindowCenter), _first(source.WindowWidth)
    if width <= 0:
        raise FileProblem(f"invalid WindowWidth {width:g} (must be > 0)")
    return center, width


def file_pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm from PixelSpacing or the functional groups' PixelMeasuresSequence; else None."""
    item = ds if "PixelSpacing" in ds else functional_item(ds, 0, "PixelMeasuresSequence")
    try:
        spacing = tuple(float(v) for v in item.PixelSpacing) if item is not None and "PixelSpacing" in item else ()
    except (TypeError, ValueError):
        return None
    return spacing if len(spacing) == 2 and all(v > 0 for v in spacing) else None  # type: ignore[return-value]


def model_pixel_spacing(metas: Sequence[dict[str, Any]], image_size: int | None,
                        resize: ResizeParams | None = None) -> tuple[float | None, str]:
    """The in-plane pixel size of the images as loaded (after ROI crop and resize) and how it was found.

    None unless every image gives PixelSpacing and the loaded pixels are square and of one size within 1 %.
    """
    sizes = []
    for meta in metas:
        spacing, (rows, cols) = meta.get("pixel_spacing"), meta.get("shape") or (0, 0)
        if spacing is None:
            return None, "unknown: a file has no PixelSpacing"
        roi = meta.get("roi_size")
        rows, cols = (roi, roi) if roi else (rows, cols)
        scale = (rows / image_size, cols / image_size) if image_size and rows and cols else (1.0, 1.0)
        if image_size and rows and cols and (rows, cols) != (image_size, image_size):
            mode = chosen_mode(rows, cols, image_size, resize or ResizeParams())
            side = max(rows, cols) if mode == "pad" else min(rows, cols) if mode == "crop" else None
            scale = scale if side is None else (side / image_size, side / image_size)
        sizes += [spacing[0] * scale[0], spacing[1] * scale[1]]
    if not sizes:
        return None, "unknown: no images"
    low, high = min(sizes), max(sizes)
    if high > 1.01 * low:
        return None, (f"unknown: pixel sizes after crop and resize range from {low:.3g} to {high:.3g} mm "
                      "(not square, or not one size)")
    how = "PixelSpacing" + (f" scaled by the resize to {image_size} pixels" if image_size else "")
    return float(np.mean(sizes)), how


def dataset_modality(metas: Sequence[dict[str, Any]]) -> str | None:
    """The harness modality name of the files' DICOM Modality when they all agree (MR → MRI), else None."""
    names = {DICOM_MODALITIES.get(str(meta.get("modality")), "other") for meta in metas}
    return names.pop() if len(names) == 1 else None


def _first(value: Any) -> float:
    return float(value[0] if isinstance(value, Sequence) and not isinstance(value, str) else value)


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map center ± width/2 to [0,1], clipping outside."""
    return np.clip((values - (center - width / 2.0)) / width, 0.0, 1.0)


def describe(params: DicomParams, result: Scan) -> tuple[NativeUnits | None, dict[str, Any]]:
    """Native units (the window width, in HU for CT) and DICOM provenance."""
    modalities = tally(result.metas, "modality")
    unit = "HU" if set(modalities) == {"CT"} and all(m["rescaled"] for m in result.metas) else "raw units"
    colour = any(m["photometric"] in ("RGB", "PALETTE COLOR") or m["photometric"].startswith("YBR")
                 for m in result.metas)
    windows = sorted({m["window"] for m in result.metas if m["window"]})
    offset = unit == "HU"  # absolute HU are known once the window is
    if isinstance(params.window, WindowParams):
        c, w = params.window.center, params.window.width
        units = NativeUnits(w, unit, f"window W{w:g} L{c:g}", offset=c - w / 2 if offset else None)
        window = {"center": c, "width": w, "from": "plan"}
    elif params.window == "file":
        units = NativeUnits(windows[0][1], unit, f"window from the files: W{windows[0][1]:g} L{windows[0][0]:g}",
                            offset=windows[0][0] - windows[0][1] / 2 if offset else None) if len(windows) == 1 else None
        window = {"from": "file", "windows": [{"center": c, "width": w} for c, w in windows[:20]]}
    else:
        units, window = None, {"from": "minmax (each image scaled to its own range)"}
    spacing, spacing_how = model_pixel_spacing(result.metas, params.image_size, params.resize)
    return (None if colour else units), {
        "format": "DICOM", "window": window, "frames": params.frames, "modalities": modalities,
        "modality": dataset_modality(result.metas), "pixel_spacing_mm": spacing, "pixel_spacing_from": spacing_how,
        "transfer_syntaxes": tally(result.metas, "syntax"),
        "photometric_interpretations": tally(result.metas, "photometric"),
        "decoder": f"pydicom {pydicom.__version__}",
    }


class DicomDataset:
    """Dataset plugin 'dicom': DICOM files with labels from class folders or a manifest CSV."""

    name = "dicom"
    description = ("DICOM images (any transfer syntax with an installed decoder) from class folders or a manifest "
                   "CSV; modality LUT, window, ROI, resize; decoded lazily; patient ids hashed.")
    identifiers = "from_source"
    Params = DicomParams

    def load(self, params: DicomParams, context: DatasetContext) -> DatasetBundle:
        """Scan every file once (validate, hash), split by patient, and return lazily decoding splits."""
        reader = DicomReader(params.window, params.frames)
        pattern = params.pattern.lower()
        bundle = load_bundle(self.name, params, context, reader, accept=lambda p: fnmatch(p.name.lower(), pattern),
                             default_grouping="DICOM PatientID (each file its own group where it is empty)",
                             describe=lambda result: describe(params, result))
        bundle.modality, bundle.pixel_spacing_mm = bundle.provenance["modality"], bundle.provenance["pixel_spacing_mm"]
        return bundle


@hookimpl
def harness_register_datasets() -> list[Any]:
    """Register the dicom dataset."""
    return [DicomDataset()]
