"""Classification metrics: accuracy, sensitivity, specificity and ROC AUC (one-vs-rest for the positive class)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _ratio(numerator: int, denominator: int) -> float | None:
    return float(numerator) / denominator if denominator else None


def rates(labels: np.ndarray, correct: np.ndarray, positive_class: int) -> dict[str, float | None]:
    """Accuracy, sensitivity (positive-class recall) and specificity (of the rest) from per-sample correctness."""
    labels = np.asarray(labels)
    correct = np.asarray(correct, dtype=bool)
    positive = labels == positive_class
    return {
        "accuracy": _ratio(int(correct.sum()), len(labels)),
        "sensitivity": _ratio(int((correct & positive).sum()), int(positive.sum())),
        "specificity": _ratio(int((correct & ~positive).sum()), int((~positive).sum())),
    }


def clean_metrics(labels: np.ndarray, logits: np.ndarray, positive_class: int) -> dict[str, object]:
    """Clean metrics on one split: accuracy, sensitivity, specificity, ROC AUC, confusion matrix, n."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = logits.argmax(axis=1)
    result: dict[str, object] = dict(rates(labels, predictions == labels, positive_class))
    probabilities = softmax(logits)
    positive = labels == positive_class
    if positive.all() or not positive.any():
        result["roc_auc"] = None  # undefined with a single class present
    else:
        result["roc_auc"] = float(roc_auc_score(positive, probabilities[:, positive_class]))
    k = logits.shape[1]
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    result["confusion_matrix"] = confusion.tolist()  # rows: true class, columns: predicted class
    result["n"] = int(len(labels))
    return result
