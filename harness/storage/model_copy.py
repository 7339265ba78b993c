"""The tested model inside the run directory: a hard link (or copy) of its file, or its saved state dict."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.storage.atomic import write_bytes_atomic
from harness.storage.hashing import file_sha256

MODEL_FOLDER = "model"


def link_or_copy(source: Path, target: Path, may_link: bool) -> str:
    """Put `source` at `target` atomically: a hard link when allowed and possible, else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        how = "copy"
        if may_link:
            try:
                os.link(source, tmp)
                how = "hard link"
            except OSError:
                pass
        if how == "copy":
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return how


def keep_model(run_dir: Path, role: str, source: str | None, module: nn.Module, may_link: bool) -> dict[str, Any]:
    """Store the model a role was tested with under run_dir/model/; what was stored, for the manifest.

    A model loaded from (or cached in) a file is copied as it is; `may_link` (files the harness only ever replaces
    by rename, like its weight cache) allows a hard link instead. A model with no file (training without the
    cache, a defence) is saved as its state dict. Names are the role, never the user's file name.
    """
    if source and Path(source).is_file():
        path = Path(source)
        target = run_dir / MODEL_FOLDER / f"{role}{''.join(path.suffixes[-1:]) or '.bin'}"
        how = link_or_copy(path, target, may_link)
        return {"path": f"{MODEL_FOLDER}/{target.name}", "sha256": file_sha256(target), "how": how,
                "source_sha256": file_sha256(path)}
    buffer = io.BytesIO()
    torch.save({k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}, buffer)
    target = run_dir / MODEL_FOLDER / f"{role}.state_dict.pt"
    write_bytes_atomic(target, buffer.getvalue())
    return {"path": f"{MODEL_FOLDER}/{target.name}", "sha256": file_sha256(target),
            "how": "state dict saved (the model had no file)"}
