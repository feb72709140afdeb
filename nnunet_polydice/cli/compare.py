"""``nnunet-polydice compare``: a table (and K x epsilon heat maps) of trained settings from nnU-Net's
validation summaries, with paired per-case statistics against a reference trainer."""

from __future__ import annotations

from nnunet_polydice.cli import _output
from nnunet_polydice.cli._output import add_results_arguments, check_results_arguments, print_written
from nnunet_polydice.experiments import checks, compare
from nnunet_polydice.experiments.statistics import DEFAULT_BOOTSTRAP, DEFAULT_SEED


def run(args) -> int:
    bootstrap, seed = checks.check_resamples(args.bootstrap), checks.check_seed(args.seed)
    seeds = None if args.seeds is None else checks.check_seeds(args.seeds)
    checks.check_metric(args.metric)
    root, dataset, folds, out_dir = check_results_arguments(args, compare.default_out_dir)
    _output.check_owned_files(out_dir, "compare", list(compare.OUTPUT_FILES), args.out)
    selection = compare.Selection(root, dataset, args.configuration, plans=args.plans, trainers=args.trainers,
                                  folds=folds, seeds=seeds)
    method = compare.Method(reference=args.reference or "nnUNetTrainer", metric=args.metric,
                            bootstrap=bootstrap, seed=seed, reference_required=args.reference is not None)
    comparison = compare.compare(selection, method, check_outputs=lambda names: _output.check_owned_files(
        out_dir, "compare", names, args.out))  # the heat maps' names too, before any statistic or line
    print(compare.text(comparison), end="", flush=True)
    print_written(out_dir, compare.write_outputs(comparison, out_dir))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="table of validation Dice per trainer and class (mean, std over folds, paired difference to a "
             "reference with bootstrap CI and Wilcoxon p), with K x epsilon heat maps",
        description=(
            "Read nnU-Net's fold_*/validation/summary.json of each finished fold (checkpoint_final.pth and a readable "
            "summary, the rule sweep uses) and write comparison.md, comparison.csv and, for each Poly family with at "
            "least two (K, epsilon) settings, one heat map per class. The difference to the reference is over the "
            "folds both trainers have; per validation case (matched by reference file, pooled over those folds) "
            "come the mean difference, a percentile bootstrap 95% CI and the two-sided Wilcoxon signed-rank p "
            "(zero differences dropped). Seeded runs (trainer names ending in _s<N>) are grouped per setting: one "
            "row of all its (fold, seed) runs, compared with the reference's runs of the same fold and seed, and "
            "--seeds keeps only the runs of the seeds given. Missing trainers, unfinished, pruned or unreadable "
            "folds and NaN values are listed, never dropped. A case whose validation reference lacks a class counts "
            "as nnU-Net scores it: Dice 0 when the prediction paints the class there, left out (NaN) only when both "
            "are empty; a fold with only such cases is noted. In "
            "the output folder only files this command wrote before (listed in .polydice_compare.json) are "
            "overwritten."))
    add_results_arguments(p, "compare", "compare")
    p.add_argument("--reference", default=None,
                   help="differences are taken to this trainer, or to its variant with the row's schedule suffix "
                        "(_<E>ep<I>it) when that has results (default: nnUNetTrainer, which may be absent; a "
                        "trainer named here must have results)")
    p.add_argument("--metric", default="Dice", help="per-class metric of nnU-Net's summary: Dice (default), IoU, ...")
    p.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, metavar="N",
                   help=f"bootstrap resamples of the paired 95%% CI, at least {checks.MIN_RESAMPLES} "
                        f"(default: {DEFAULT_BOOTSTRAP})")
    p.add_argument("--seed", default=DEFAULT_SEED,
                   help=f"seed of the bootstrap (numpy default_rng; default: {DEFAULT_SEED})")
    p.add_argument("--seeds", nargs="+", metavar="N",
                   help="only the seeded runs (trainer names ending in _s<N>) of these seeds; unseeded runs are "
                        "compared as they are (default: every seed found). Seeded runs of one setting are one row, "
                        "compared with the reference's runs of the same fold and seed")
    p.set_defaults(func=run)
