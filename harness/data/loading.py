"""Loading a data set through its plugin: the core's own checks on what came back, then de-identification."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from harness.data.splits import check_no_group_crosses
from harness.errors import DataError, PluginContractError
from harness.registry.contracts import DatasetBundle, DatasetContext
from harness.storage.deid import FileNamer, hash_id

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def load_dataset(plugin: Any, params: Any, context: DatasetContext, salt: str) -> DatasetBundle:
    """Call `plugin.load`, check the bundle meets the contract, hash its ids unless they are synthetic, and check
    that no patient crosses splits (naming the hashed id, never the raw one).

    The plugin names files through `context.name_file`, keyed here with the same secret (so a file's label is
    stable across runs and cannot be reversed by guessing names).

    Raises PluginContractError (one line naming the plugin) when the plugin returns something other than a
    DatasetBundle or leaves out the content hash that makes a run traceable to its data.
    """
    context = dataclasses.replace(context, file_namer=FileNamer(salt, context.show_paths))
    bundle = plugin.load(params, context)
    if not isinstance(bundle, DatasetBundle):
        raise PluginContractError(f"dataset plugin {plugin.name!r} returned {type(bundle).__name__}, not a "
                                  "DatasetBundle (see docs/plugins.md)")
    digest = bundle.provenance.get("content_sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise PluginContractError(f"dataset plugin {plugin.name!r} gave no provenance['content_sha256'] (a sha256 "
                                  "of the images, labels and split assignment it loaded); a run must be traceable "
                                  "to its data (see docs/plugins.md)")
    if plugin.identifiers == "from_source":
        deidentify(bundle, salt)
    try:
        check_no_group_crosses({name: split.group_ids for name, split in bundle.splits.items()})
    except DataError as exc:
        where = bundle.provenance.get("manifest") or bundle.provenance.get("source")
        raise DataError(f"{plugin.name}: {where + ': ' if where else ''}{exc}") from None
    return bundle


def deidentify(bundle: DatasetBundle, salt: str) -> None:
    """Replace every split's sample and group ids, in place, by keyed hashes ('sample:<id>', 'patient:<id>')."""
    for split in bundle.splits.values():
        split.sample_ids = [hash_id(f"sample:{raw}", salt) for raw in split.sample_ids]
        split.group_ids = [hash_id(f"patient:{raw}", salt) for raw in split.group_ids]
