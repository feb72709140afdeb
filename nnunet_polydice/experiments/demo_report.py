"""The demo's report: the Dice of the held-out predictions, its table, and the picture of a few held-out slices.

:func:`dice_scores` scores the predictions per class (pooled and per case), :func:`format_dice_table` writes
them as a markdown table; :func:`pick_slices` chooses the slices (per class the slice with the most reference
pixels of it, then the most reference foreground); :func:`write_prediction_figure` draws them into a PNG of a
fixed size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MAX_SLICES", "CLASS_COLOURS", "dice_scores", "format_dice_table", "pick_slices",
           "write_prediction_figure"]

def dice_scores(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray], labels: dict) -> dict:
    """Per-class Dice of predicted against reference label maps (one array per case, same shapes).

    For each foreground class ``c`` (``labels`` maps names to values; ``background`` is left out), with
    ``P`` and ``G`` the pixels predicted as / labelled ``c``:

    - ``pooled``: ``2 sum|P & G| / (sum|P| + sum|G|)`` with the sums over all cases (None when the class is
      in no prediction and no reference);
    - ``per_case_mean``: the mean over cases of ``2|P & G| / (|P| + |G|)``, over the cases where the class
      is in the reference or the prediction (None when there is no such case);
    - ``n_cases``: the number of those cases.

    Raises:
        ValueError: when the lists differ in length or a prediction and its reference differ in shape.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references.")
    for i, (p, g) in enumerate(zip(predictions, references)):
        if np.shape(p) != np.shape(g):
            raise ValueError(f"case {i}: prediction shape {np.shape(p)} differs from reference shape {np.shape(g)}.")
    out = {}
    for name, value in labels.items():
        if name == "background" or not isinstance(value, int):
            continue
        inter = total = 0
        per_case = []
        for p, g in zip(predictions, references):
            pc, gc = np.asarray(p) == value, np.asarray(g) == value
            i, s = int(np.count_nonzero(pc & gc)), int(np.count_nonzero(pc)) + int(np.count_nonzero(gc))
            inter, total = inter + i, total + s
            if s:
                per_case.append(2.0 * i / s)
        out[name] = {"pooled": 2.0 * inter / total if total else None,
                     "per_case_mean": float(np.mean(per_case)) if per_case else None,
                     "n_cases": len(per_case)}
    return out


def _num(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def format_dice_table(scores: dict, unit: str = "slices") -> str:
    """A markdown table: one row per trainer, for each class the pooled Dice and the mean per-case Dice
    (with the number of cases it averages)."""
    trainers = list(scores)
    classes = list(scores[trainers[0]]) if trainers else []
    head = ["trainer"]
    for c in classes:
        head += [f"{c} pooled", f"{c} mean per {unit[:-1]} (n)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for t in trainers:
        cells = [t]
        for c in classes:
            s = scores[t][c]
            cells += [_num(s["pooled"]), f"{_num(s['per_case_mean'])} ({s['n_cases']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: At most this many slices in the picture (:func:`pick_slices`).
MAX_SLICES = 4

#: Outline colours of the classes 1, 2, ... (gold, magenta, cyan, lime, orange: apart from each other and from
#: the grey of the image).
CLASS_COLOURS = ("#ffd700", "#ff00ff", "#00ffff", "#32cd32", "#ff8c00")

# Layout of the picture, in pixels at FIGURE_DPI: one square panel per column (image, reference, each trainer)
# and row (slice), a band for the panel titles above each panel, a header (title) and a footer (legend).
FIGURE_DPI = 100
PANEL_PX = 240
TITLE_PX = 40
HEADER_PX = 40
FOOTER_PX = 40


def pick_slices(references: Sequence[np.ndarray], labels: dict, n: int = MAX_SLICES) -> list[tuple[int, int]]:
    """The slices of the picture, as ``(case index, slice index)`` pairs; a case is an array ``(Z, H, W)``
    (``Z`` 1 for the 2D data) and its slices are ``case[z]``.

    The rule: first, for each foreground class in the order of ``labels``, the slice with the most reference
    pixels of that class (when it has any), so that every class present is shown where it is largest; then the
    slices with the most reference foreground pixels (all classes together), until there are ``n``. Ties go to
    the earlier slice. Returned in case and slice order.
    """
    slices = [(i, z) for i, ref in enumerate(references) for z in range(np.shape(ref)[0])]
    planes = [np.asarray(references[i][z]) for i, z in slices]
    values = [v for k, v in labels.items() if k != "background" and isinstance(v, int)]
    chosen: list[int] = []
    for value in values:
        counts = [np.count_nonzero(p == value) for p in planes]
        k = int(np.argmax(counts)) if counts else 0  # argmax: the first of equal counts
        if counts and counts[k] and k not in chosen:
            chosen.append(k)
    foreground = [np.count_nonzero(np.isin(p, values)) for p in planes]
    for k in sorted(range(len(planes)), key=lambda k: (-foreground[k], k)):
        if k not in chosen:
            chosen.append(k)
    return [slices[k] for k in sorted(chosen[:n])]


def _outline(ax, label_slice: np.ndarray, values: Sequence[int]) -> None:
    for value in values:
        mask = (label_slice == value).astype(float)
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=[CLASS_COLOURS[(value - 1) % len(CLASS_COLOURS)]],
                       linewidths=1.6)


def _slice_dice(pred: np.ndarray, ref: np.ndarray, labels: dict) -> str:
    scores = dice_scores([pred], [ref], labels)
    return "  ".join(f"{name} {_num(s['pooled'])}" for name, s in scores.items())


def write_prediction_figure(path, images: Sequence[np.ndarray], references: Sequence[np.ndarray],
                            predictions: dict, case_ids: Sequence[str], labels: dict, title: str,
                            n: int = MAX_SLICES) -> Path:
    """Draw the slices :func:`pick_slices` chooses into a PNG at ``path`` and return it.

    One row per slice: the image (grey, 1st-99th percentile of the slice), the image with the reference
    outlined, then the image with each trainer's prediction outlined (``predictions`` maps trainer names to
    arrays like ``references``) and that slice's Dice per class in the panel title. Each class has its colour
    (:data:`CLASS_COLOURS`, legend at the bottom). The size is fixed by the layout constants: ``(2 + number of
    trainers) * PANEL_PX`` wide, ``HEADER_PX + rows * (TITLE_PX + PANEL_PX) + FOOTER_PX`` high, at FIGURE_DPI.
    Uses matplotlib's Agg renderer through a Figure of its own (pyplot's state is not touched).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    values = {name: v for name, v in labels.items() if name != "background" and isinstance(v, int)}
    chosen = pick_slices(references, labels, n)
    columns = ["image", "reference", *predictions]
    width = len(columns) * PANEL_PX
    height = HEADER_PX + len(chosen) * (TITLE_PX + PANEL_PX) + FOOTER_PX
    fig = Figure(figsize=(width / FIGURE_DPI, height / FIGURE_DPI), dpi=FIGURE_DPI)
    pad = 4
    for row, (i, z) in enumerate(chosen):
        image = np.asarray(images[i][z], dtype=float)
        low, high = np.percentile(image, [1, 99])
        ref = np.asarray(references[i][z])
        top = height - HEADER_PX - row * (TITLE_PX + PANEL_PX) - TITLE_PX  # upper edge of the panels, from below
        slice_id = case_ids[i] + (f" z={z}" if np.shape(references[i])[0] > 1 else "")
        for col, column in enumerate(columns):
            ax = fig.add_axes(((col * PANEL_PX + pad) / width, (top - PANEL_PX + pad) / height,
                               (PANEL_PX - 2 * pad) / width, (PANEL_PX - 2 * pad) / height))
            ax.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1e-6), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if column == "image":
                ax.set_title(slice_id, fontsize=9)
            elif column == "reference":
                _outline(ax, ref, values.values())
                ax.set_title("reference", fontsize=9)
            else:
                pred = np.asarray(predictions[column][i][z])
                _outline(ax, pred, values.values())
                ax.set_title(f"{column}\n{_slice_dice(pred, ref, labels)}", fontsize=8)
    handles = [Line2D([], [], color=CLASS_COLOURS[(v - 1) % len(CLASS_COLOURS)], linewidth=2, label=name)
               for name, v in values.items()]
    fig.legend(handles=handles, loc="center", ncol=max(1, len(handles)), frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, FOOTER_PX / 2 / height))
    fig.suptitle(title, fontsize=10, y=1 - HEADER_PX / 2 / height, va="center")
    path = Path(path)
    fig.savefig(path, dpi=FIGURE_DPI, format="png")
    return path
