"""``compare``'s output folder: ``comparison.md``, ``comparison.csv`` and the heat maps, under its manifest."""

from __future__ import annotations

from pathlib import Path

from nnunet_polydice.experiments import outputs
from nnunet_polydice.experiments.compare._heatmap import heatmap_files, plot_heatmap
from nnunet_polydice.experiments.compare._model import Comparison
from nnunet_polydice.experiments.compare._render import csv_text, markdown

__all__ = ["MANIFEST", "OUTPUT_FILES", "default_out_dir", "write_outputs"]

#: Name of the file, in the output folder, that lists the files this tool wrote.
MANIFEST = outputs.manifest_name("compare")
#: The files every run writes (the heat maps come on top).
OUTPUT_FILES = ("comparison.md", "comparison.csv")


def default_out_dir(results: Path, dataset_name: str, configuration: str, plans: str = "nnUNetPlans") -> Path:
    """``<results>/<dataset>/polydice_compare_<configuration>`` (``polydice_compare_<plans>_<configuration>``
    for plans other than nnUNetPlans, so that two plans do not share one folder)."""
    return outputs.default_out_dir(results, dataset_name, configuration, plans, "compare")


def write_outputs(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write ``comparison.md``, ``comparison.csv`` and the heat maps to ``out_dir`` (created if needed).

    Only files this tool wrote before (listed in ``.polydice_compare.json``) are overwritten; such
    files that this run does not produce any more (e.g. heat maps of a family no longer compared) are
    removed. Returns the paths written.

    Raises:
        FileExistsError: when a file to be written exists and was not written by this tool; nothing
            is written then.
    """
    folder = outputs.OwnedFolder(out_dir, "compare")
    heatmaps = heatmap_files(comparison)
    targets = [*OUTPUT_FILES, *[h[0] for h in heatmaps]]
    folder.claim(targets)
    out_dir = folder.out_dir
    written = []
    for fname, label, cells, key, name in heatmaps:
        plot_heatmap(out_dir / fname, comparison, label, cells, key, name)
        written.append(out_dir / fname)
    (out_dir / "comparison.csv").write_text(csv_text(comparison), encoding="utf-8")
    (out_dir / "comparison.md").write_text(markdown(comparison, [h[0] for h in heatmaps]), encoding="utf-8")
    folder.commit(targets)
    return [out_dir / "comparison.md", out_dir / "comparison.csv", *written]
