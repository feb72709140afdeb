"""Compare trained settings from nnU-Net's own validation summaries.

The library side of ``nnunet-polydice compare``; no argparse, no printing. The pipeline
:func:`compare` = :func:`read_runs` -> :func:`merge_rows` -> :func:`link_references`; the modules behind it:

================  ======================================================================================
``_model``        :class:`Selection`, :class:`Method` and the data: :class:`Row`, :class:`Comparison`, ...
``_read``         :func:`read_runs`: one raw row per trainer folder, the missing folds and their reasons
``_merge``        :func:`merge_rows`: the names and seeds of one setting into one row
``_pairing``      paired per-case differences, their statistics, Holm across seeded rows
``_link``         :func:`link_references`: each row's reference and its differences to it
``_render``       :func:`text`, :func:`markdown`, :func:`csv_text` of a :class:`Comparison`
``_heatmap``      the K x epsilon heat maps
``_write``        :func:`write_outputs` into the tool's own output folder
================  ======================================================================================

Input: ``$nnUNet_results/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/fold_<f>/validation/summary.json``
(:mod:`nnunet_polydice.experiments.layout` reads it) as nnU-Net writes it (``compute_metrics_on_folder``)::

    {"foreground_mean": {"Dice": ..., "IoU": ..., ...},
     "mean": {"1": {"Dice": ..., ...}, "2": {...}},          # label value as a string, or
             {"(1, 2, 3)": {...}, "(3,)": {...}},              # region tuple as a string (region-based)
     "metric_per_case": [{"reference_file": ".../case_001.nii.gz", "prediction_file": ...,
                          "metrics": {"1": {"Dice": ..., "n_ref": ..., ...}, ...}}, ...]}

Which folds count: the rule of :mod:`nnunet_polydice.experiments.runs`, the one ``sweep`` uses. A fold
is compared when it is finished (``checkpoint_final.pth`` and a readable summary.json). A fold that
sweep leaves alone as *foreign* (a readable summary.json copied in without any checkpoint) is compared
too and listed under Notes. Every other fold goes to :attr:`Comparison.missing` with its reason: not
trained, training not finished, *pruned* by the tuner, or a summary.json that cannot be used (missing,
empty, truncated, not nnU-Net's object; with its path). One bad fold never stops the rest.

Output: a :class:`Comparison`, one :class:`Row` per trainer, with for each class (and for the
foreground mean) the mean over folds, the sample standard deviation (``ddof = 1``; none with one
fold), the number of folds, and

* the difference to the reference trainer (:func:`reference_for`) **over the folds both have a value
  for**: ``mean_{f in F} x_f - mean_{f in F} r_f`` with ``F`` the common folds (their number is shown);
* paired per-case statistics (:class:`Paired`): the validation cases of the common folds, matched by
  their reference file name within each fold and pooled, give differences ``d_i = x_i - r_i``; their
  mean, a percentile bootstrap 95 % confidence interval (:func:`bootstrap_ci`) and the two-sided
  Wilcoxon signed-rank p (:func:`wilcoxon_p`).

Rows are settings (:func:`setting_and_seed`): the names of one setting (a family name and its explicit
default name) are one row. Seeded runs (``<setting>_s<N>``, one results folder per seed) of a setting are
one row whose instances are (fold, seed) pairs, apart from its unseeded runs; they are compared with the
reference's seeded runs of the same (fold, seed), case by case (:class:`Seeded`, with
:func:`nnunet_polydice.experiments.statistics.compare_instances`: seed sd, hierarchical bootstrap CI,
Wilcoxon over runs, Holm across the rows of one reference, verdict, the 'seeds disagree' flag).

Class names come from the ``labels`` of the ``dataset.json`` that nnU-Net copies into each trainer
folder (falling back to the summary's key).

What is missing is never dropped silently: a requested trainer without a results folder, a fold that
is not finished, and a class whose value is NaN in a fold (nnU-Net's mean is NaN when a class is in
neither reference nor prediction of any validation case) all go to :attr:`Comparison.missing`; rows with
fewer folds than compared are marked.

Cases whose reference lacks a class follow nnU-Net's own rule, in the fold means and the paired
statistics alike: such a case counts, with Dice (and IoU) 0 when the prediction has the class (a false
positive), and is left out only when both are empty (nnU-Net's NaN). So a setting that paints a structure
on slices without it pays for it. A fold whose reference lacks the class in every case and whose value is
nnU-Net's 0 is noted with its false-positive voxels (:attr:`Comparison.notes`). The foreground-mean column
is nnU-Net's own ``foreground_mean`` of each fold, unchanged; per case, the foreground value is the mean
over the classes whose value is defined for the case (not NaN).

The fold-mean difference of the main table weighs each fold alike; the paired statistics weigh each case
(pooled over folds, or by the hierarchical bootstrap for seeded rows): with folds of different sizes the
two differ, and the text says so.

Files (:func:`write_outputs`): ``comparison.md``, ``comparison.csv`` and, for each Poly family with at
least two (K, epsilon) settings, one K x epsilon heat map per class
(``heatmap_<family>[_a<A>_b<B>][_<E>ep<I>it]_<metric>_<class>.png``). The files written are listed in
``.polydice_compare.json`` in the output folder; a later run overwrites (and, when no longer produced,
removes) only files listed there, and refuses to overwrite any other file
(:class:`nnunet_polydice.experiments.outputs.OwnedFolder`).
"""

from __future__ import annotations

from collections.abc import Callable

from nnunet_polydice.experiments import checks
from nnunet_polydice.experiments.compare._heatmap import heatmap_groups
from nnunet_polydice.experiments.compare._link import link_references, reference_for
from nnunet_polydice.experiments.compare._merge import merge_rows
from nnunet_polydice.experiments.compare._model import (
    OVERLAP_METRICS,
    Cell,
    Comparison,
    Method,
    Missing,
    Paired,
    PairedDifferences,
    Row,
    Seeded,
    Selection,
)
from nnunet_polydice.experiments.compare._pairing import paired_differences, paired_stats
from nnunet_polydice.experiments.compare._read import check_reference, read_runs
from nnunet_polydice.experiments.compare._render import SEEDED_TITLE, csv_text, markdown, text, title
from nnunet_polydice.experiments.compare._write import (
    MANIFEST,
    OUTPUT_FILES,
    default_out_dir,
    output_names,
    write_outputs,
)
from nnunet_polydice.experiments.layout import FOREGROUND, select_folds

__all__ = ["MANIFEST", "OUTPUT_FILES", "OVERLAP_METRICS", "SEEDED_TITLE", "Selection", "Method", "Cell", "Paired",
           "PairedDifferences", "Row", "Seeded", "Missing", "Comparison", "compare", "read_runs", "merge_rows",
           "link_references", "select_folds", "check_reference", "reference_for", "paired_differences",
           "paired_stats", "heatmap_groups", "title", "text", "markdown", "csv_text", "default_out_dir",
           "output_names", "write_outputs"]


def compare(selection: Selection, method: Method | None = None, *,
            check_outputs: Callable[[list[str]], None] | None = None) -> Comparison:
    """Read every ``fold_<f>/validation/summary.json`` of the selection and build the :class:`Comparison`:
    :func:`read_runs`, then :func:`merge_rows`, then :func:`link_references`.

    Rows: one per setting and kind of run (:func:`merge_rows`). The names of one setting (the family name
    and its explicit default name) are one row; seeded runs of a setting are one row of (fold, seed)
    instances, apart from its unseeded runs. A seeded row is compared with the reference's seeded runs of
    the same (fold, seed), an unseeded row with unseeded runs, never across.

    ``check_outputs(names)`` is called with every file name the comparison will write (:func:`output_names`, the
    heat maps included) once the runs are read, before any statistic is computed: the command line's clash check.

    Raises:
        FileNotFoundError: when the dataset has no results folder.
        ValueError: when no trainer is found, a summary lacks the metric, or ``method.bootstrap`` is out of
            range (:func:`checks.check_resamples`). An unusable summary.json is not an error: its fold is
            listed in :attr:`Comparison.missing`.
    """
    method = Method() if method is None else method
    checks.check_resamples(method.bootstrap)
    found = read_runs(selection, method)
    rows = merge_rows(found.rows, found.folds, found.notes)
    comparison = Comparison(selection.dataset_name, selection.configuration, selection.plans, method.metric,
                            method.reference, found.folds, found.classes, rows, found.missing, found.notes,
                            method.bootstrap, method.seed)
    if check_outputs is not None:
        check_outputs(output_names(comparison))
    link_references(rows, [k for k, _ in found.classes] + [FOREGROUND], method, found.missing)
    return comparison
