"""Figures for the report: matplotlib (Agg, no pyplot state) rendered to PNG data URIs, and image thumbnails.

Every axis is labelled with its unit in parentheses; the labels are also written into the PNG (text chunk
AXES_KEY, one line per axis) so that tests can check what each figure in a report shows.
"""

from __future__ import annotations

import base64
import io
import textwrap
from dataclasses import dataclass

import numpy as np

DPI = 150
COLOURS = {"naive": "#c0392b", "hardened": "#1f5fa8"}
NORM_LABEL = {"linf": "L∞", "l2": "L2"}
AXES_KEY = "harness-axes"  # PNG text chunk: the axis labels of the figure, one per line


@dataclass
class Curve:
    """One model's accuracy under one attack across the epsilon grid."""

    role: str
    epsilons: list[float]
    accuracy: list[float | None]
    clean_accuracy: float | None
    bounds: list[tuple[float, float] | None] | None = None  # the confidence interval at each epsilon (a band)


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI for <img src>, so the HTML report stands alone."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def axis_labels(fig) -> list[str]:
    """Every non-empty axis label of a figure, secondary axes included."""
    axes = [a for ax in fig.axes for a in (ax, *ax.child_axes)]
    return [label for a in axes for label in (a.get_xlabel(), a.get_ylabel()) if label]


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None, AXES_KEY: "\n".join(axis_labels(fig))})
    return buffer.getvalue()


def epsilon_label(what: str, norm: str) -> str:
    """'ε (L∞ norm, [0,1] pixel units, log scale)': an epsilon axis on images scaled to [0,1]."""
    return f"{what} ({NORM_LABEL.get(norm, norm)} norm, [0,1] pixel units, log scale)"


def _native_axis(ax, what: str, per_unit: float | None, unit: str | None, norm: str,
                 ticks: list[float] | None = None) -> None:
    """A top axis with the epsilons in the data's native units (L∞ only: an L2 budget has no per-pixel unit)."""
    from matplotlib.ticker import FuncFormatter

    if not per_unit or not unit or norm != "linf":
        return
    top = ax.secondary_xaxis("top", functions=(lambda x: x * per_unit, lambda x: x / per_unit))
    if ticks:
        _fixed_ticks(top.xaxis, [e * per_unit for e in ticks], lambda v: f"{v:.3g}")
    else:
        top.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    top.set_xlabel(f"{what} ({unit})", fontsize=8)
    top.tick_params(labelsize=7.5)


def _style(ax) -> None:
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    ax.grid(True, which="minor", axis="x", color="#eeeeee", linewidth=0.4)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _accuracy_axes(ax, norm: str, curves: list[Curve], cutoff: float | None, native_per_unit: float | None,
                   native_unit: str | None, fontsize: float = 8.5, min_decades: float = 0.0) -> None:
    """One attack's accuracy against epsilon (log scale) on `ax`: a line and band per model, clean accuracy dashed,
    the cutoff dotted, ε in native units on the top axis."""
    from matplotlib.ticker import PercentFormatter

    all_eps = [eps for curve in curves for eps in curve.epsilons if eps > 0]
    for curve in curves:
        _accuracy_line(ax, curve, "under attack", lambda eps: eps > 0)
    ax.set_xscale("log")
    ticks = _tick_subset(sorted(set(all_eps)), min_decades=min_decades, keep=cutoff)
    if all_eps:
        low, high = min(all_eps), max(all_eps)
        ax.set_xlim(low / 1.5, high * 1.5)
        _fixed_ticks(ax.xaxis, ticks, lambda e: f"{e:g}")
    if cutoff and all_eps and min(all_eps) / 1.5 <= cutoff <= max(all_eps) * 1.5:
        ax.axvline(cutoff, color="#777777", linestyle=":", linewidth=1.0, label=f"cutoff ε = {cutoff:g}")
    ax.set_ylim(-3, 103)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlabel(epsilon_label("ε", norm), fontsize=fontsize)
    ax.set_ylabel("accuracy (%)", fontsize=fontsize)
    if ticks:
        _native_axis(ax, "ε", native_per_unit, native_unit, norm, ticks)
    _style(ax)


def accuracy_panels(panels: list[tuple[str, str, list[Curve]]], cutoff: float | None,
                    native_per_unit: float | None = None, native_unit: str | None = None) -> bytes:
    """Accuracy against epsilon under each attack, one panel per (attack id, norm, curves), two panels a row and
    one legend below them."""
    from matplotlib.figure import Figure

    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(6.8, 0.4 + 1.55 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (attack_id, norm, curves) in zip(axes, panels, strict=False):
        _accuracy_axes(ax, norm, curves, cutoff, native_per_unit, native_unit, fontsize=7.5, min_decades=0.45)
        ax.set_title(attack_id, fontsize=8.5, fontweight="bold", loc="left")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    legend = {label: handle for ax in axes[:len(panels)] for handle, label in zip(*ax.get_legend_handles_labels(),
                                                                                  strict=True)}
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=min(4, len(legend)),
               fontsize=7, frameon=False)
    return _png(fig)


def _accuracy_line(ax, curve: Curve, condition: str, keep=lambda x: True) -> None:
    """One model's accuracy against the curve's x values (kept where `keep`) with its confidence band, and its
    clean accuracy dashed."""
    colour = COLOURS.get(curve.role, "#555555")
    points = [(x, 100 * a) for x, a in zip(curve.epsilons, curve.accuracy, strict=True) if a is not None and keep(x)]
    ax.plot([x for x, _ in points], [y for _, y in points], marker="o", markersize=3.5, linewidth=1.6, color=colour,
            label=f"{curve.role}: {condition}")
    band = [(x, b) for x, b in zip(curve.epsilons, curve.bounds or [], strict=False) if b is not None and keep(x)]
    if band:
        ax.fill_between([x for x, _ in band], [100 * b[0] for _, b in band], [100 * b[1] for _, b in band],
                        color=colour, alpha=0.15, linewidth=0, label=f"{curve.role}: confidence interval")
    if curve.clean_accuracy is not None:
        ax.axhline(100 * curve.clean_accuracy, color=colour, linestyle="--", linewidth=1.0, alpha=0.8,
                   label=f"{curve.role}: clean")


@dataclass
class SeverityPanel:
    """One corruption's panel: its title (id, then its parameter's unit), each model's curve over the severity levels,
    and each level's parameter value (written under the level)."""

    title: str
    curves: list[Curve]
    tick_labels: dict[int, str]


def severity_panels(panels: list[SeverityPanel], columns: int = 4) -> bytes:
    """Accuracy on corrupted images against severity level (1-5), one small panel per corruption with each model's
    line and interval band, clean accuracy dashed; one legend below the panels."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(6.8, 0.4 + 1.3 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharey=True)
    for index, ax in enumerate(axes.ravel()):
        if index >= len(panels):
            ax.set_axis_off()
            continue
        panel = panels[index]
        for curve in panel.curves:
            _accuracy_line(ax, curve, "corrupted")
        levels = sorted(panel.tick_labels)
        ax.set_xlim(0.6, 5.4)
        _fixed_ticks(ax.xaxis, [float(level) for level in levels],
                     lambda level, labels=panel.tick_labels: f"{int(level)}\n{labels[int(level)]}")
        ax.set_ylim(-3, 103)
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set_title(panel.title, fontsize=6.5, loc="left", linespacing=1.1)
        _style(ax)
        ax.tick_params(labelsize=6)
        if index % columns == 0:
            ax.set_ylabel("accuracy (%)", fontsize=7)
        if index + columns >= len(panels):
            ax.set_xlabel("severity (level)", fontsize=7)
    legend = {label: handle for ax in axes.ravel()[:len(panels)]
              for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncols=len(legend) if len(legend) <= 4 else 3, fontsize=6.5, frameon=False)
    return _png(fig)


@dataclass
class ProfileRow:
    """One condition of the robustness profile: its label and each model's accuracy under it."""

    label: str
    kind: str  # 'clean', 'attack' or 'corruption'
    accuracy: dict[str, float | None]  # by model role


def _tick_label(label: str) -> str:
    """A profile row's label as its tick: the worst case named short, at most two lines (the table beside the
    figure gives each label in full); a long label would squeeze the axes to nothing."""
    head, sep, tail = label.partition(", ε = ")
    if head.startswith("worst case of"):
        head = "worst case"
    lines = textwrap.wrap(head + sep + tail, 36)
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def profile_plot(rows: list[ProfileRow]) -> bytes:
    """Accuracy of each model under each condition (clean, attacks, corruptions) as dots on one axis per row."""
    from matplotlib.ticker import PercentFormatter

    fig, ax = _figure(3.7, 0.75 + 0.2 * len(rows))
    ys = list(range(len(rows)))[::-1]
    roles = [role for role in COLOURS if any(row.accuracy.get(role) is not None for row in rows)]
    for role in roles:
        points = [(100 * row.accuracy[role], y) for row, y in zip(rows, ys, strict=True)
                  if row.accuracy.get(role) is not None]
        ax.scatter([x for x, _ in points], [y for _, y in points], s=22, color=COLOURS[role], label=role, zorder=3)
    for row, y in zip(rows, ys, strict=True):
        values = [100 * v for v in row.accuracy.values() if v is not None]
        if len(values) > 1:
            ax.plot([min(values), max(values)], [y, y], color="#999999", linewidth=1.0, zorder=2)
    for y, row, below in zip(ys, rows, rows[1:], strict=False):
        if row.kind != below.kind:  # a thin line between the clean, attack and corruption groups
            ax.axhline(y - 0.5, color="#cccccc", linewidth=0.6)
    ax.set_yticks(ys)
    ax.set_yticklabels([_tick_label(row.label) for row in rows], fontsize=7)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlim(-3, 103)
    ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlabel("accuracy (%)", fontsize=8.5)
    ax.set_ylabel("condition (categories)", fontsize=8.5)
    _style(ax)
    ax.grid(False, axis="y")
    ax.legend(fontsize=7, loc="lower left", frameon=False, ncols=len(roles))
    return _png(fig)


def subgroup_plot(rows: list[tuple[str, float | None, tuple[float, float] | None]], xlabel: str) -> bytes | None:
    """One dot per subgroup with its confidence interval as an error bar (a horizontal forest plot, in %)."""
    from matplotlib.ticker import PercentFormatter

    shown = [(label, value, bounds) for label, value, bounds in rows if value is not None]
    if not shown:
        return None
    fig, ax = _figure(6.0, 0.9 + 0.28 * len(shown))
    ys = list(range(len(shown)))[::-1]
    for y, (_, value, bounds) in zip(ys, shown, strict=True):
        if bounds is not None:
            ax.plot([100 * bounds[0], 100 * bounds[1]], [y, y], color="#1f5fa8", linewidth=1.4)
        ax.plot([100 * value], [y], marker="o", markersize=4, color="#1f5fa8")
    ax.set_yticks(ys, [label for label, _, _ in shown], fontsize=7.5)
    ax.set_xlim(-3, 103)
    ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlabel(f"{xlabel} (%)", fontsize=8.5)
    ax.set_ylabel("subgroup (n: test image count)", fontsize=8.5)
    _style(ax)
    return _png(fig)


def _tick_subset(values: list[float], most: int = 7, min_decades: float = 0.0,
                 keep: float | None = None) -> list[float]:
    """At most `most` of the grid epsilons, spread evenly, always keeping the first and last; with `min_decades`,
    only ticks at least that far apart on the log axis (the first, the last and `keep` are placed first)."""
    if min_decades > 0:
        chosen = [v for v in (values[0], values[-1], keep) if v in values] if values else []
        for v in values:
            if all(abs(np.log10(v / c)) >= min_decades for c in chosen):
                chosen.append(v)
        return sorted(set(chosen))
    if len(values) <= most:
        return values
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, most)).astype(int))
    return [values[i] for i in picks]


def _fixed_ticks(axis, ticks: list[float], label) -> None:
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FixedFormatter([label(t) for t in ticks]))
    axis.set_minor_locator(NullLocator())


def min_epsilon_histogram(attack_id: str, norm: str, values: dict[str, np.ndarray], cutoff: float | None,
                          native_per_unit: float | None = None, native_unit: str | None = None) -> bytes | None:
    """Histogram (log x) of per-image minimal flipping epsilons; zeros and 'not found' are left to the caption."""
    from matplotlib.ticker import FuncFormatter

    finite = {role: v[np.isfinite(v) & (v > 0)] for role, v in values.items()}
    pooled = np.concatenate([v for v in finite.values()]) if finite else np.array([])
    if pooled.size == 0:
        return None
    low, high = float(pooled.min()), float(pooled.max())
    if cutoff:
        low, high = min(low, cutoff), max(high, cutoff)
    if high / low < 1.5:
        low, high = low / 1.5, high * 1.5
    bins = np.logspace(np.log10(low), np.log10(high), 25)
    fig, ax = _figure(6.4, 1.8)
    for role, v in finite.items():
        if v.size:
            colour = COLOURS.get(role, "#555555")
            ax.hist(v, bins=bins, color=colour, alpha=0.45, label=f"{role} (n={v.size})", edgecolor=colour,
                    linewidth=0.6)
    if cutoff:
        ax.axvline(cutoff, color="#333333", linestyle=":", linewidth=1.1, label=f"cutoff ε = {cutoff:g}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(epsilon_label("minimal flipping ε", norm), fontsize=8.5)
    ax.set_ylabel("test images (count)", fontsize=8.5)
    _native_axis(ax, "minimal flipping ε", native_per_unit, native_unit, norm)
    _style(ax)
    ax.legend(fontsize=7, frameon=False, title=attack_id, title_fontsize=7.5)
    return _png(fig)


PLANE_GAP = 2  # pixels of white between the panels of a volume's strip


def side_by_side(panels: list[np.ndarray], fill: float = 1.0) -> np.ndarray:
    """2-D (or C×H×W) panels in one row, each top-aligned (padded below with `fill`), PLANE_GAP white columns
    apart."""
    panels = [p if p.ndim == 3 else p[None] for p in panels]
    height = max(p.shape[1] for p in panels)
    parts = []
    for k, panel in enumerate(panels):
        padded = np.full((panel.shape[0], height, panel.shape[2]), fill, dtype=np.float64)
        padded[:, :panel.shape[1]] = panel
        parts.append(padded)
        if k < len(panels) - 1:
            parts.append(np.full((panel.shape[0], height, PLANE_GAP), 1.0))  # white gaps
    return np.concatenate(parts, axis=2)


def orthogonal_planes(volume: np.ndarray, centre: tuple[int, int, int] | None = None) -> np.ndarray:
    """A C×D×H×W volume as one C×H'×W' strip: the axial (H×W), coronal (D×W) and sagittal (D×H) planes through
    `centre` (default: the volume's centre, where a plan's ROI puts the lesion)."""
    _, depth, height, width = volume.shape
    d, h, w = centre if centre is not None else (depth // 2, height // 2, width // 2)
    return side_by_side([volume[:, d], volume[:, :, h], volume[:, :, :, w]])


def projections(volume: np.ndarray) -> np.ndarray:
    """A C×D×H×W volume's maximum-intensity projections along D, H and W, laid out as `orthogonal_planes`."""
    return side_by_side([volume.max(axis=1), volume.max(axis=2), volume.max(axis=3)], fill=0.0)


def image_png(image: np.ndarray, min_side: int = 168, max_side: int = 256) -> bytes:
    """A C×H×W image in [0,1] as a PNG (grey for 1 channel, RGB for 3), resized for print; a C×D×H×W volume as
    its three orthogonal mid-planes side by side."""
    from PIL import Image

    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 4:
        array = orthogonal_planes(array)
        min_side, max_side = 3 * min_side, 3 * max_side
    if array.ndim == 3:  # C×H×W: RGB when 3 channels, else the first channel in grey
        array = np.moveaxis(array, 0, -1) if array.shape[0] == 3 else array[0]
    pixels = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    picture = Image.fromarray(pixels)
    side = max(picture.size)
    if side < min_side:  # small images: blow up without smoothing so single pixels stay visible
        scale = -(-min_side // side)
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    elif side > max_side:
        scale = max_side / side
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                 Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


@dataclass
class CertifiedCurve:
    """Certified accuracy of one smoothed classifier (one σ) against the L2 radius."""

    sigma: float
    radii: list[float]
    accuracy: list[float | None]
    bounds: list[tuple[float, float] | None] | None = None


def certified_plot(panels: list[tuple[str, list[CertifiedCurve]]], epsilon_radii: list[tuple[float, str]]) -> bytes:
    """One panel per model: certified accuracy against radius, a line per σ (band: its interval), a dotted vertical
    line at each plan ε's L2 radius ε·√d."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    fig = Figure(figsize=(6.4, 2.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    shades = ["#7fb3d5", "#1f5fa8", "#0b2e59", "#5b2c6f", "#a04000"]
    top = max((r for _, curves in panels for c in curves for r in c.radii), default=1.0)
    for ax, (title, curves) in zip(axes, panels, strict=True):
        for k, curve in enumerate(curves):
            colour = shades[k % len(shades)]
            xs = [r for r, a in zip(curve.radii, curve.accuracy, strict=True) if a is not None]
            ys = [100 * a for a in curve.accuracy if a is not None]
            ax.step(xs, ys, where="pre", color=colour, linewidth=1.3, label=f"σ = {curve.sigma:g}")
            if curve.bounds:
                kept = [(r, b) for r, b in zip(curve.radii, curve.bounds, strict=True) if b is not None]
                if kept:
                    ax.fill_between([r for r, _ in kept], [100 * b[0] for _, b in kept],
                                    [100 * b[1] for _, b in kept], step="pre", color=colour, alpha=0.12,
                                    linewidth=0)
        for radius, label in epsilon_radii:
            ax.axvline(radius, color="#777777", linestyle=":", linewidth=0.9)
            ax.text(radius, 101, label, rotation=90, fontsize=6.5, color="#555555", ha="right", va="top")
        ax.set_xlim(0, top * 1.02)
        ax.set_ylim(-3, 103)
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("certified radius r (L2 norm, [0,1] pixel units)", fontsize=8)
        _style(ax)
    axes[0].set_ylabel("certified accuracy (%)", fontsize=8)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _png(fig)
