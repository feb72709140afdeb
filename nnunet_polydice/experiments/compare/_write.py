"""``compare``'s output folder: ``comparison.md``, ``comparison.csv`` and the heat maps, under its manifest."""

from __future__ import annotations

from pathlib import Path

from nnunet_polydice.experiments import outputs
from nnunet_polydice.experiments.compare._heatmap import heatmap_files, plot_heatmap
from nnunet_polydice.experiments.compare._model import Comparison
from nnunet_polydice.experiments.compare._render import csv_text, markdown

__all__ = ["MANIFEST", "OUTPUT_FILES", "default_out_dir", "output_names", "write_outputs"]

#: Name of the file, in the output folder, that lists the files this tool wrote.
MANIFEST = outputs.manifest_name("compare")
#: The files every run writes (the heat maps come on top).
OUTPUT_FILES = ("comparison.md", "comparison.csv")


def default_out_dir(results: Path, dataset_name: str, configuration: str, plans: str = "nnUNetPlans") -> Path:
    """``<results>/<dataset>/polydice_compare_<configuration>`` (``polydice_compare_<plans>_<configuration>``
    for plans other than nnUNetPlans, so that two plans do not share one folder)."""
    return outputs.default_out_dir(results, dataset_name, configuration, plans, "compare")


def output_names(comparison: Comparison) -> list[str]:
    """Every file a comparison writes: :data:`OUTPUT_FILES`, then its heat maps. Known once the runs are read
    (before any statistic is computed: :func:`nnunet_polydice.experiments.compare.compare`'s ``check_outputs``)."""
    return [*OUTPUT_FILES, *[h[0] for h in heatmap_files(comparison)]]


def write_outputs(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write ``comparison.md``, ``comparison.csv`` and the heat maps to ``out_dir`` (created if needed).

    Only files this tool wrote before (listed in ``.polydice_compare.json``) are overwritten; such
    files that this run does not produce any more (e.g. heat maps of a family no longer compared) are
    removed. Every file is written whole or not at all, under names the manifest lists before the first is
    written (:class:`~nnunet_polydice.experiments.outputs.OwnedFolder`). Returns the paths written.

    Raises:
        FileExistsError: when a file to be written exists and was not written by this tool; nothing
            is written then.
        OutputNotWritten: when a file cannot be written (a full disk): one sentence naming it.
    """
    folder = outputs.OwnedFolder(out_dir, "compare")
    heatmaps = heatmap_files(comparison)
    targets = output_names(comparison)
    folder.claim(targets)
    written = []
    for fname, label, cells, key, name in heatmaps:
        written.append(folder.write(fname, lambda path, h=(label, cells, key, name): plot_heatmap(
            path, comparison, *h)))
    csv_file = folder.write_text("comparison.csv", csv_text(comparison))
    md_file = folder.write_text("comparison.md", markdown(comparison, [h[0] for h in heatmaps]))
    folder.commit(targets)
    return [md_file, csv_file, *written]
