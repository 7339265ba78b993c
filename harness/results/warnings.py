"""The warnings a reviewer must see about the data and the numbers, from one list of checks.

Each check is a function `(results, manifest) -> iterable of messages` reading only the results document and the
manifest (the typed harness.results.manifest.Manifest). The runner applies CHECKS every time it saves (`collect`),
so a warning reaches results.json's `warnings`, the console (the closing lines, also when the run stops with an
error) and the report's warnings section, and a run that stops half-way keeps the warnings found so far. To add a
warning, write a check and add it to CHECKS: it runs many times, so it must say only what the data or finished
numbers show; a message already recorded is not repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from harness.plan.metrics import CLEAN, metrics_in
from harness.results.manifest import Manifest
from harness.results.model import ResultsDocument

Check = Callable[[ResultsDocument, Manifest], Iterable[str]]
SMALL_TEST = 30  # fewer test images than this: every rate moves by more than 3 percentage points per image
SMALL_CLASS = 10  # fewer test images of a class: its rate (sensitivity or specificity) moves by 10 points per image
NOT_A_CLASSIFIER = "which no working classifier does"  # marks the predictions warning (the cover repeats it)
SHOWN_FILES = 3  # skipped files named in the warning (all are listed in the manifest and the report)


def _provenance(manifest: Manifest) -> Mapping[str, Any]:
    return manifest.dataset_provenance


def skipped_files(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """Files the data set skipped (on_error: skip): they are in no split."""
    skipped = _provenance(manifest).get("skipped") or []
    if not skipped:
        return
    shown = "; ".join(f"{item.get('file')}: {item.get('reason')}" if isinstance(item, Mapping) else str(item)
                      for item in skipped[:SHOWN_FILES])
    more = f"; and {len(skipped) - SHOWN_FILES} more" if len(skipped) > SHOWN_FILES else ""
    yield (f"data: {len(skipped)} file{'s were' if len(skipped) != 1 else ' was'} skipped as unusable "
           f"(on_error: skip) and {'are' if len(skipped) != 1 else 'is'} in no split: {shown}{more} (all are listed "
           "in the manifest and the report)")


def small_test_split(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """A test split so small that one image moves a rate by several percentage points."""
    dataset = results.dataset
    if dataset is None or not dataset.n_test:
        return
    counts = (_provenance(manifest).get("counts") or {}).get("test") or {}
    per_class = {str(k): v for k, v in counts.items() if isinstance(v, int)} if isinstance(counts, Mapping) else {}
    smallest = min(per_class.values(), default=None)
    if dataset.n_test >= SMALL_TEST and (smallest is None or smallest >= SMALL_CLASS):
        return
    classes = f" ({', '.join(f'{name} {n}' for name, n in per_class.items())})" if per_class else ""
    step = f"one image moves accuracy by {100 / dataset.n_test:.3g} percentage points"
    if smallest:
        step += f" and a per-class rate by up to {100 / smallest:.3g}"
    yield (f"data: the test split is small: {dataset.n_test} images{classes}; {step}, so a criterion can pass or "
           f"fail by chance (warned below {SMALL_TEST} test images or {SMALL_CLASS} of a class)")


def undefined_metrics(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """Clean metrics that cannot be computed on the test split (e.g. ROC AUC with one class present)."""
    names = list(results.dataset.class_names) if results.dataset else []
    for role, model in results.models.items():
        undefined = [metric.label for metric in metrics_in(CLEAN) if getattr(model.clean, metric.field) is None]
        if not undefined:
            continue
        rows = model.clean.confusion_matrix
        absent = [names[k] if k < len(names) else f"class {k}" for k, row in enumerate(rows) if sum(row) == 0]
        why = f"the test split has no {' and no '.join(repr(a) for a in absent)} images" if absent else \
            "the test split does not allow it"
        yield f"{role}: clean {', '.join(undefined)} cannot be computed: {why}; criteria on them count as failed"


def leakage(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """Images of val or test that duplicate an image of an earlier split (harness.data.leakage)."""
    found = manifest.leakage
    if found.get("summary"):
        yield f"data: {found['summary']}"


def _class_name(names: list[str], k: int) -> str:
    return names[k] if k < len(names) else f"class {k}"


def not_a_classifier(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """A model that predicts one class for every test image, or whose clean accuracy is not above the majority
    class's share of the test split: its predictions cannot be a working classifier's."""
    names = list(results.dataset.class_names) if results.dataset else []
    for role, model in results.models.items():
        rows = [list(row) for row in model.clean.confusion_matrix]
        n = sum(sum(row) for row in rows)
        if not n or model.clean.accuracy is None:
            continue
        predicted = [sum(row[k] for row in rows) for k in range(len(rows))]
        majority = max(sum(row) for row in rows) / n
        used = [k for k, count in enumerate(predicted) if count]
        if len(used) == 1:
            what = f"predicts {_class_name(names, used[0])!r} for every one of the {n} test images"
        elif model.clean.accuracy <= majority:
            what = (f"has clean accuracy {model.clean.accuracy:.3f}, not above the majority class's share of the "
                    f"test split ({majority:.3f})")
        else:
            continue
        yield (f"{role}: the model {what}, {NOT_A_CLASSIFIER}; likely causes: wrong preprocessing or "
               "normalisation (model.normalization, input scaling) or the wrong class order (the model's outputs in "
               "another order than the data set's classes)")


def training_data_leakage(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """Test images that duplicate an image of the plan's leakage reference (harness.data.fingerprints)."""
    found = manifest.leakage.get("training_data") or {}
    if found.get("against") == "reference" and found.get("leaked_images"):
        yield f"data: {found['summary']}"


def escaping_links(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """Data files whose real path leaves the data folder (a symlink or '..'), followed because sandbox is off."""
    links = _provenance(manifest).get("escaping_links") or []
    if links:
        shown = ", ".join(str(link) for link in links[:SHOWN_FILES]) + (
            f" and {len(links) - SHOWN_FILES} more" if len(links) > SHOWN_FILES else "")
        yield (f"data: {len(links)} file{'s' if len(links) != 1 else ''} of the data folder lead"
               f"{'' if len(links) != 1 else 's'} outside it (a symlink or '..'): {shown}; they were read because "
               "sandbox is off (sandbox: true refuses them); all are listed in the manifest")


def failed_baselines(results: ResultsDocument, manifest: Manifest) -> Iterable[str]:
    """Regression gates judged against an approved run that did not pass (`allow_failed: true`)."""
    for c in results.criteria:
        if c.baseline is not None and c.baseline.allow_failed and c.baseline.run.passed is not True:
            yield (f"baseline: criterion {c.id} is judged against {c.baseline.spec}, a run that did not pass "
                   "(accepted by allow_failed: true)")


CHECKS: tuple[Check, ...] = (skipped_files, escaping_links, small_test_split, leakage, training_data_leakage,
                             undefined_metrics, failed_baselines, not_a_classifier)


def collect(results: ResultsDocument, manifest: Manifest | Mapping[str, Any], checks: Iterable[Check] = CHECKS
            ) -> ResultsDocument:
    """The document with every check's new messages appended (in check order; none repeated). The checks read the
    typed Manifest; the runner's manifest under construction (its JSON form) is decoded here."""
    manifest = manifest if isinstance(manifest, Manifest) else Manifest.from_json(manifest)
    seen = set(results.warnings)
    new = []
    for check in checks:
        for message in check(results, manifest):
            if message not in seen:
                seen.add(message)
                new.append(message)
    return results.with_warnings(*new) if new else results
