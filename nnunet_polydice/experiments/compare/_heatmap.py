"""``compare``'s K x epsilon heat maps: which rows make a map, the file names, the plot."""

from __future__ import annotations

from pathlib import Path

from nnunet_polydice.experiments.compare._model import Comparison
from nnunet_polydice.experiments.outputs import file_slug
from nnunet_polydice.integration.naming import format_k, format_number, schedule_suffix

__all__ = ["heatmap_groups", "heatmap_files", "plot_heatmap"]


def heatmap_groups(comparison: Comparison) -> dict:
    """``{group label: {(K, epsilon): Row}}`` for each Poly family (per alpha/beta and schedule) with at
    least two (K, epsilon) settings among the rows. The label is used in the file names; seeded rows make
    groups of their own (label ending ``_seeded``, each cell the mean over its (fold, seed) runs)."""
    groups: dict = {}
    for row in comparison.rows:
        spec = row.spec
        if spec is None or spec.family is None or not spec.family.loss.is_poly:
            continue
        label = spec.family.name
        if "a" in spec.family.params:
            label += f"_a{format_number(spec.alpha)}_b{format_number(spec.beta)}"
        label += schedule_suffix(spec.epochs, spec.iterations) + ("" if row.seeds is None else "_seeded")
        cells = groups.setdefault(label, {})
        setting = (spec.K, spec.epsilon)
        if setting not in cells or spec.explicit:  # an explicit name wins over the family's default name
            cells[setting] = row
    return {label: cells for label, cells in groups.items() if len(cells) >= 2}


def heatmap_files(comparison: Comparison) -> list:
    """``[(file name, group label, cells, class key, class name)]``."""
    out = []
    slugs = {}
    for key, name in comparison.classes:
        s = file_slug(name)
        slugs[key] = s if s not in slugs.values() else f"{s}_{file_slug(key)}"
    for label, cells in heatmap_groups(comparison).items():
        for key, name in comparison.classes:
            out.append((f"heatmap_{label}_{file_slug(comparison.metric)}_{slugs[key]}.png", label, cells, key, name))
    return out


def plot_heatmap(path: Path, comparison: Comparison, label: str, cells: dict, key: str, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    Ks = sorted({k for k, _ in cells})
    eps = sorted({e for _, e in cells})
    grid = np.full((len(Ks), len(eps)), np.nan)
    notes = [["missing"] * len(eps) for _ in Ks]
    for (K, e), row in cells.items():
        i, j = Ks.index(K), eps.index(e)
        cell = row.cells.get(key)
        if cell is not None and cell.n:
            grid[i, j] = cell.mean
            full = len(comparison.folds) * (1 if row.seeds is None else len(row.seeds))
            notes[i][j] = f"{cell.mean:.3f}" + (f"\nn={cell.n}/{full}" if cell.n < full else "")
    fig, ax = plt.subplots(figsize=(1.3 * len(eps) + 2.5, 0.9 * len(Ks) + 1.8))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    finite = grid[np.isfinite(grid)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.01, vmax + 0.01
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i in range(len(Ks)):
        for j in range(len(eps)):
            v = grid[i, j]
            dark = np.isfinite(v) and (v - vmin) / (vmax - vmin) < 0.5
            ax.text(j, i, notes[i][j], ha="center", va="center", fontsize=9,
                    color="white" if dark else ("black" if np.isfinite(v) else "grey"))
    ax.set_xticks(range(len(eps)), [f"{e:g}" for e in eps])
    ax.set_yticks(range(len(Ks)), [format_k(k) for k in Ks])
    ax.set_xlabel("epsilon")
    ax.set_ylabel("K")
    over = "folds x seeds" if label.endswith("_seeded") else "folds"
    ax.set_title(f"{label}\n{name}: mean validation {comparison.metric} over {over}", fontsize=9)
    fig.colorbar(image, ax=ax, label=f"mean {comparison.metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
