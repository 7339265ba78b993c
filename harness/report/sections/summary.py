"""The summary: clean accuracy, accuracy under each attack at the cutoff epsilon, and the verdict in sentences."""

from __future__ import annotations

from typing import Any

from harness.formatting import eps_text, pct
from harness.report.inputs import ReportInput
from harness.report.text import join_words
from harness.results.model import AttackPoint

TITLE = "Summary"


def _clean_sentence(report: ReportInput) -> str | None:
    naive, hardened = report.model("naive"), report.model("hardened")
    if naive is None:
        return None
    dataset = report.run.dataset
    c = naive.clean
    text = (f"On {c.n} test images of {dataset.name if dataset else 'the data set'}, the naive model classifies "
            f"{pct(c.accuracy)} correctly without attack (sensitivity {pct(c.sensitivity)}, specificity "
            f"{pct(c.specificity)})")
    if hardened:
        h = hardened.clean
        text += (f"; the hardened model classifies {pct(h.accuracy)} correctly (sensitivity {pct(h.sensitivity)}, "
                 f"specificity {pct(h.specificity)})")
    return text + "."


def _attack_sentence(report: ReportInput) -> str | None:
    naive, hardened = report.model("naive"), report.model("hardened")
    if naive is None:
        return None
    parts: list[tuple[str, AttackPoint]] = []
    hardened_parts: list[AttackPoint | None] = []
    for attack_id in report.attack_ids:
        point = report.point_near_cutoff("naive", attack_id)
        if point is not None:
            parts.append((attack_id, point))
            hardened_parts.append(report.point_near_cutoff("hardened", attack_id) if hardened else None)
    if not parts:
        return None
    eps_used = {point.epsilon for _, point in parts}
    single = len(eps_used) == 1
    if single:
        eps0 = parts[0][1].epsilon
        native = report.native_text(eps0, parts[0][1])
        lead = f"At ε = {eps_text(eps0)}" + (f" ({native})" if native else "")
        if eps0 != report.cutoff:
            lead += f", the grid value closest to the {eps_text(report.cutoff)} cutoff"
    else:
        lead = "At the grid ε closest to the cutoff"

    def item(attack_id: str, point: AttackPoint, role: str = "naive") -> str:
        where = "" if single else f" at ε = {eps_text(point.epsilon)}"
        bound = "at most " if report.upper_bound(role, attack_id, point.epsilon) else ""  # the attack failed there
        return f"{bound}{pct(point.robust_accuracy)} under {report.attack_name(attack_id)}{where}"

    text = (f"{lead}, the naive model's accuracy is " + join_words([item(a, p) for a, p in parts])
            + f", against {pct(naive.clean.accuracy)} without attack")
    if hardened and any(hardened_parts):
        plugin = report.run.defence.plugin if report.run.defence else "the defence"
        items = [item(a, hp, "hardened") for (a, _), hp in zip(parts, hardened_parts, strict=True) if hp]
        text += (f"; the model hardened by {plugin} reaches " + join_words(items)
                 + f" ({pct(hardened.clean.accuracy)} without attack)")
    return text + "."


def _verdict_sentence(report: ReportInput) -> str:
    verdict = report.run.verdict
    if verdict is None:
        return (f"The run did not complete ({report.stop_description()}), so no verdict was formed; the numbers "
                "below are those computed before it stopped.")
    if verdict.n_criteria == 0:
        return "The plan defines no acceptance criteria, so the verdict PASS is vacuous."
    inconclusive = (f" and {verdict.n_inconclusive} {'is' if verdict.n_inconclusive == 1 else 'are'} inconclusive "
                    "(an attack-failure indicator failed where they judge)") if verdict.n_inconclusive else ""
    return (f"{verdict.n_passed} of {verdict.n_criteria} pre-registered acceptance criteria passed{inconclusive}: "
            f"the overall verdict is {verdict.word}.")


def build(report: ReportInput) -> dict[str, Any]:
    """The summary sentences, and what the note under them needs."""
    sentences = [s for s in (_clean_sentence(report), _attack_sentence(report)) if s]
    norms = {attack.norm for a in report.attack_ids if (attack := report.attack(a))}
    return {"sentences": [*sentences, _verdict_sentence(report)], "has_l2": "l2" in norms,
            "native_note": report.native_note()}
