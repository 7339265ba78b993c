"""Models "trained outside the harness" and the files users hand over: state dicts, TorchScript, ONNX, DICOM sets."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from torch import nn

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def toy_images(n: int, size: int = 16, seed: int = 0, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """[0,1] float32 images with a bright (label 1) or dark (label 0) square, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = 0.5 + 0.05 * rng.standard_normal((n, channels, size, size))
    for i, label in enumerate(labels):
        r, c = rng.integers(0, size - size // 3, size=2)
        images[i, :, r:r + size // 3, c:c + size // 3] = 0.85 if label else 0.15
    return np.clip(images, 0, 1).astype(np.float32), labels.astype(np.int64)


class UserPreprocessing(nn.Module):
    """What a user's own pipeline does in front of the network: (x − mean) / std."""

    def __init__(self, network: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.network, self.mean, self.std = network, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((x - self.mean) / self.std)


def fit_outside(network: nn.Module, images: np.ndarray, labels: np.ndarray, mean: float, std: float,
                steps: int = 30, seed: int = 0) -> nn.Module:
    """A few Adam steps with the user's own normalisation (so BatchNorm statistics are not the defaults)."""
    torch.manual_seed(seed)
    model = UserPreprocessing(network, mean, std)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def save_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """torch.jit.trace + save (TorchScript is deprecated in torch ≥ 2.10 but still loads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module.eval(), example), str(path))
    return path


def save_onnx(module: nn.Module, example: torch.Tensor, path: Path, dynamic_batch: bool = True) -> Path:
    """torch.onnx.export with the TorchScript-based exporter (dynamo=False: needs only the onnx package)."""
    axes = {"images": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, input_names=["images"],
                          output_names=["logits"], dynamic_axes=axes)
    return path


def write_dicom(path: Path, pixels: np.ndarray, patient_id: str) -> Path:
    """A secondary-capture DICOM file of uint16 pixels with a window covering 0..4095."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "OT", patient_id
    ds.set_pixel_data(pixels, "MONOCHROME2", 16)
    ds.WindowCenter, ds.WindowWidth = 2047.5, 4095
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_test_set(folder: Path, images: np.ndarray, labels: np.ndarray, n_patients: int,
                   class_names: tuple[str, str] = ("dark", "bright")) -> Path:
    """DICOM files of `images` (one channel, [0,1]) and a manifest whose rows are all `test`."""
    rows = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"img{i:03d}.dcm"
        write_dicom(folder / name, np.rint(image[0] * 4095).astype(np.uint16), f"patient{i % n_patients}")
        rows.append({"path": name, "label": class_names[int(label)], "split": "test",
                     "patient_id": f"patient{i % n_patients}"})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "patient_id"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def read_pixels(path: Path) -> np.ndarray:
    """The stored pixels of a DICOM file (for checks)."""
    return pydicom.dcmread(path).pixel_array
