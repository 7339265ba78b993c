"""The tested model kept in the run directory: copied, hard-linked only from the harness's own cache, or saved."""

from __future__ import annotations

import os

import torch

from harness.storage.hashing import file_sha256
from harness.storage.model_copy import keep_model


def test_a_user_file_is_copied_and_a_cache_file_linked(tmp_path):
    source = tmp_path / "weights.pt"
    source.write_bytes(b"weights")
    copied = keep_model(tmp_path / "run", "naive", str(source), torch.nn.Identity(), may_link=False)
    assert copied == {"path": "model/naive.pt", "sha256": file_sha256(source), "how": "copy",
                      "source_sha256": file_sha256(source)}
    source.write_bytes(b"edited in place")  # a later edit of the user's file must not change the kept copy
    assert (tmp_path / "run" / "model" / "naive.pt").read_bytes() == b"weights"
    linked = keep_model(tmp_path / "run2", "naive", str(source), torch.nn.Identity(), may_link=True)
    assert linked["how"] == "hard link"
    assert os.stat(tmp_path / "run2" / "model" / "naive.pt").st_ino == os.stat(source).st_ino


def test_a_model_without_a_file_is_saved_as_its_state_dict(tmp_path):
    module = torch.nn.Linear(2, 2)
    kept = keep_model(tmp_path, "hardened", None, module, may_link=True)
    assert kept["path"] == "model/hardened.state_dict.pt" and kept["how"].startswith("state dict saved")
    state = torch.load(tmp_path / kept["path"], weights_only=True)
    assert torch.equal(state["weight"], module.weight.detach())
    assert file_sha256(tmp_path / kept["path"]) == kept["sha256"]
