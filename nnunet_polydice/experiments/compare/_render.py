"""``compare``'s table as text, markdown and CSV: rendering only, from a :class:`Comparison` it does not change."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from nnunet_polydice.experiments.compare._model import OVERLAP_METRICS, Cell, Comparison, Row
from nnunet_polydice.experiments.statistics import MIN_CASES, MIN_INSTANCES, ZERO_METHOD
from nnunet_polydice.integration.naming import format_k, schedule_suffix, split_schedule

__all__ = ["SEEDED_TITLE", "title", "text", "markdown", "csv_text"]

SEEDED_TITLE = "Seeded settings against the reference, over folds x seeds"


def _signed(value: float) -> str:
    return f"{round(value, 4) + 0.0:+.4f}"  # + 0.0: no '-0.0000' from rounding noise


def _n_folds(n: int) -> str:
    return "1 fold" if n == 1 else f"{n} folds"


def _name(c: Comparison, row: Row) -> str:
    """The trainer column: the name, with ``[seeds 0,1,2]`` or ``[unseeded]`` once any row is seeded."""
    return row.trainer + (f" [{row.label}]" if c.any_seeded else "")


# ------------------------------------------------------------------------------ rendering


def _cell_text(c: Comparison, row: Row, key) -> str:
    cell = row.cells.get(key)
    if cell is None or cell.n == 0:
        return "-"
    text = f"{cell.mean:.4f}"
    if cell.std is not None:
        text += f" ± {cell.std:.4f}"
    if cell.n < row.n_instances:
        text += f" [n={cell.n}]"
    if row.against_reference:
        diff, n = row.diffs.get(key), len(row.diff_folds.get(key, []))
        if row.seeds is None:
            text += " (no fold in common)" if diff is None else f" ({_signed(diff)}, {_n_folds(n)})"
        else:
            text += " (no run in common)" if diff is None else f" ({_signed(diff)}, {n} runs)"
    return text


def _table(c: Comparison) -> tuple[list, list]:
    header = ["trainer", "folds", *[t for _, t in c.columns()], "reference"]
    body = []
    for row in c.rows:
        name = _name(c, row) + (" *" if c.incomplete(row) else "")
        cells = [_cell_text(c, row, k) for k, _ in c.columns()]
        folds = f"{row.n_folds}/{len(c.folds)}" + ("" if row.seeds is None else f", {row.n_instances} runs")
        body.append([name, folds, *cells, row.reference or "-"])
    return header, body


def _legend(c: Comparison) -> list:
    lines = [f"Cells: mean ± sample standard deviation over folds of the validation {c.metric} "
             f"(nnU-Net's validation/summary.json), (difference to the reference, over the folds both have a "
             f"value for: the trainer's mean over those folds minus the reference's mean over the same folds; "
             f"their number)."]
    if any(c.incomplete(r) for r in c.rows):
        folds = "the fold" if len(c.folds) == 1 else f"the {len(c.folds)} folds"
        lines.append(f"* fewer than {folds} compared ({', '.join(c.folds)}); see Missing.")
    lines.append("foreground mean: nnU-Net's foreground_mean of each fold (over all classes, as nnU-Net's "
                 "model selection uses it), then averaged over folds.")
    if any(c.n < r.n_instances for r in c.rows for c in r.cells.values()):
        lines.append("[n=...] folds in which this class's value was NaN (in neither reference nor prediction of "
                     "any validation case) are left out of that cell (see Missing).")
    if c.any_seeded:
        lines.append("[seeds 0,1,2]: the seeded runs of one setting (<setting>_s<N>, one results folder per "
                     "seed), one row; its cells are the mean ± sample sd over its runs, one per (fold, seed), "
                     "and the difference is over the runs both it and the reference have. [unseeded]: runs "
                     "without a seed suffix, compared as before. Seeded and unseeded runs of one setting are "
                     "two rows and never pooled: a seeded row is compared only with the reference's seeded runs "
                     "of the same (fold, seed), an unseeded row only with unseeded runs.")
    if any(len(r.members) > 1 for r in c.rows):
        lines.append("Names of one setting (a family name and its explicit default name) are one row, named by "
                     "the setting; a fold (or fold and seed) trained under both names is taken from the name "
                     "that spells the setting out and the other run is listed under Notes, not pooled.")
    return lines


def _seeded_table(c: Comparison) -> tuple[list, list]:
    header = ["trainer", "runs", "reference", "class", "runs paired", "cases", "left out", "seed sd",
              "mean diff", "95% CI", "Wilcoxon p", "Holm p", "verdict", "flag", "note"]
    body = []
    for row in c.rows:
        if row.seeds is None or not row.seeded:
            continue
        for key, title in c.columns():
            entry = row.seeded.get(key)
            if entry is None:
                continue
            res = entry.result
            sd = "-" if entry.seed_sd is None else f"{entry.seed_sd:.4f}"
            if res is None:
                what = "the reference itself" if row.reference == row.trainer else "; ".join(entry.notes)
                body.append([row.trainer, row.label, row.reference or "-", title, str(len(entry.instances)), "-",
                             str(entry.left_out), sd, "-", "n/a", "n/a", "n/a", "-", "", what])
                continue
            body.append([row.trainer, row.label, row.reference, title, str(res.n_instances), str(res.n_cases),
                         str(entry.left_out + res.cases_left_out), sd, _signed(res.mean_difference),
                         f"[{_signed(res.ci[0])}, {_signed(res.ci[1])}]",
                         "n/a" if res.p is None else f"{res.p:.3g}",
                         "n/a" if res.p_holm is None else f"{res.p_holm:.3g}", res.verdict,
                         "seeds disagree" if res.seeds_disagree else "", "; ".join(entry.notes)])
    return header, body


def _seeded_legend(c: Comparison) -> list:
    return [
        f"Seeded rows against the reference's runs of the same (fold, seed): d = the row's {c.metric} minus "
        f"the reference's per (fold, seed, case), on the cases common to all seeds of a fold (left out: NaN "
        f"values, i.e. the class in neither reference nor prediction, and cases not every seed of the fold "
        f"has); mean diff = mean over folds of the mean over seeds and cases.",
        f"seed sd (noise floor): the standard deviation of the row's own per-run {c.metric} between seeds of "
        f"one fold, pooled over folds (fold-to-fold differences do not count): how far two runs of this setting "
        f"differ by chance alone.",
        f"95% CI: hierarchical percentile bootstrap of the mean diff ({c.bootstrap} resamples, numpy "
        f"default_rng(seed={c.seed})): folds kept, within each fold the seeds drawn with replacement and one "
        f"draw of the fold's cases shared by all drawn seeds; the 2.5th and 97.5th percentiles.",
        f"Wilcoxon p: two-sided signed-rank test over the per-(fold, seed) mean differences (needs "
        f"{MIN_INSTANCES} non-zero ones). Holm p: that p adjusted by Holm's method across the rows compared with "
        f"the same reference (per class), so that the chance of any false 'better' or 'worse' among them stays "
        f"at 5 %.",
        "verdict: better (worse) when the CI lies wholly above (below) 0 and Holm p < 0.05; within noise "
        "otherwise; undetermined when there are too few runs for a p. Act on better or worse; within noise "
        "means these runs cannot tell the setting from the reference.",
        "flag 'seeds disagree': the seed sd is larger than |mean diff|: this setting's seeds differ from each "
        "other by more than the setting differs from the reference, so a single run could have pointed either "
        "way; more seeds, not another single run, would settle it."]


def _paired_table(c: Comparison) -> tuple[list, list]:
    header = ["trainer", "reference", "class", "folds", "cases", "left out", "mean diff", "95% CI", "Wilcoxon p",
              "non-zero", "note"]
    body = []
    for row in c.rows:
        if not row.against_reference:
            continue
        for key, title in c.columns():
            pr = row.paired.get(key)
            if pr is None:
                continue
            ci = "n/a" if pr.ci is None else \
                f"[{_signed(pr.ci[0])}, {_signed(pr.ci[1])}]" + (" *" if pr.excludes_zero else "")
            body.append([row.trainer, row.reference, title, ", ".join(pr.folds) or "-", str(pr.n),
                         str(pr.left_out), "-" if pr.mean is None else _signed(pr.mean), ci,
                         "n/a" if pr.p is None else f"{pr.p:.3g}", str(pr.nonzero), "; ".join(pr.notes)])
    return header, body


def _paired_legend(c: Comparison) -> list:
    overlap = c.metric in OVERLAP_METRICS
    lines = [f"Paired: the validation cases of the folds both the trainer and its reference have, matched by "
             f"the file name of their reference within each fold and pooled over those folds; d = trainer's "
             f"{c.metric} minus the reference's, per case; mean diff = the mean of d.",
             f"95% CI: percentile bootstrap of the mean of d ({c.bootstrap} resamples of the cases with "
             f"replacement, numpy default_rng(seed={c.seed}); the 2.5th and 97.5th percentiles of the "
             f"resampled means). * marks a CI that excludes 0.",
             f"Wilcoxon p: two-sided signed-rank test of d (scipy.stats.wilcoxon, zero_method='{ZERO_METHOD}': "
             f"zero differences are dropped; non-zero counts the rest). Not available when all differences "
             f"are zero or fewer than {MIN_CASES} are non-zero (the smallest possible p would be 2/2^5 = 0.0625 "
             f"or more); the CI needs {MIN_CASES} paired cases. Neither is corrected for multiple comparisons."]
    if overlap:
        lines.append(f"A case whose reference lacks the class counts, as in nnU-Net: its {c.metric} is 0 for a "
                     f"false positive; left out: cases where reference and prediction both lack it (NaN).")
    lines.append(f"foreground mean, per case: the mean of the case's {c.metric} over the classes defined for it "
                 f"(not NaN).")
    lines.append("The fold-mean difference of the main table weighs each fold alike, the paired mean diff "
                 "each case: with folds of different sizes the two differ.")
    return lines


def title(c: Comparison) -> str:
    return (f"{c.dataset}, {c.configuration}, plans {c.plans}: validation {c.metric}, "
            f"folds {', '.join(c.folds) or '-'}, reference {c.reference}")


def _plain(header: list, body: list) -> list:
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    return lines + ["  ".join(v.ljust(w) for v, w in zip(b, widths)).rstrip() for b in body]


def text(c: Comparison) -> str:
    """A plain-text table, the legend, the paired statistics, the Missing list and the notes."""
    lines = [title(c), "", *_plain(*_table(c)), "", *_legend(c), ""]
    header, body = _paired_table(c)
    if body:
        lines += ["Paired per-case differences to the reference:", *_plain(header, body), "",
                  *_paired_legend(c), ""]
    header, body = _seeded_table(c)
    if body:
        lines += [f"{SEEDED_TITLE}:", *_plain(header, body), "", *_seeded_legend(c), ""]
    if c.missing:
        lines.append(f"Missing ({len(c.missing)}):")
        lines += [f"  {m}" for m in c.missing]
    else:
        lines.append("Missing: none.")
    if c.notes:
        lines += ["", f"Notes ({len(c.notes)}):", *[f"  {m}" for m in c.notes]]
    return "\n".join(lines) + "\n"


def markdown(c: Comparison, images: Sequence[str] = ()) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731

    def table(header, body):
        return ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|",
                *["| " + " | ".join(esc(v) for v in b) + " |" for b in body]]

    lines = [f"# Comparison: {esc(title(c))}", "", *table(*_table(c)), "", *_legend(c)]
    header, body = _paired_table(c)
    if body:
        lines += ["", "## Paired per-case differences to the reference", "", *table(header, body), "",
                  *_paired_legend(c)]
    header, body = _seeded_table(c)
    if body:
        lines += ["", f"## {SEEDED_TITLE}", "", *table(header, body), "", *_seeded_legend(c)]
    lines += ["", "## Missing", ""]
    lines += [f"- {esc(str(m))}" for m in c.missing] if c.missing else ["None."]
    if c.notes:
        lines += ["", "## Notes", "", *[f"- {esc(str(m))}" for m in c.notes]]
    if images:
        lines += ["", "## Heat maps", ""]
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in images]
    return "\n".join(lines) + "\n"


def csv_text(c: Comparison) -> str:
    """Long format: one line per trainer x class (and foreground mean)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trainer", "family", "K", "epsilon", "alpha", "beta", "schedule", "class", "label_key", "metric",
                "n_folds", "folds_compared", "mean", "std", "reference", "diff_to_reference", "diff_n_folds",
                "diff_folds", "fold_values", "paired_folds", "paired_cases", "paired_left_out",
                "paired_mean_diff", "ci95_low", "ci95_high", "ci_excludes_zero", "wilcoxon_p",
                "wilcoxon_nonzero", "paired_note", "bootstrap_resamples", "bootstrap_seed", "runs", "n_runs",
                "seed_sd", "runs_paired", "seeded_cases", "seeded_left_out", "seeded_mean_diff",
                "seeded_ci95_low", "seeded_ci95_high", "runs_wilcoxon_p", "holm_p", "verdict", "seeds_disagree",
                "seeded_note"])
    num = lambda v: "" if v is None else repr(float(v))  # noqa: E731
    for row in c.rows:
        spec = row.spec
        sched = schedule_suffix(*split_schedule(row.trainer)[1:])
        fam = spec.family_name if spec is not None else None
        for key, name in c.columns():
            cell = row.cells.get(key, Cell())
            against = row.against_reference or row.reference == row.trainer
            common = row.diff_folds.get(key, []) if against else []
            pr = row.paired.get(key) if row.against_reference else None
            entry = row.seeded.get(key)
            res = None if entry is None else entry.result
            w.writerow([
                row.trainer, fam or "",
                "" if spec is None or spec.K is None else format_k(spec.K),
                "" if spec is None or spec.epsilon is None else num(spec.epsilon),
                "" if spec is None or spec.alpha is None else num(spec.alpha),
                "" if spec is None or spec.beta is None else num(spec.beta),
                sched[1:],
                name, key, c.metric, cell.n, len(c.folds), num(cell.mean), num(cell.std),
                row.reference or "", num(row.diffs.get(key)), len(common) if against else "",
                ";".join(k.short for k in common),
                ";".join(f"{k.short}:{v!r}" for k, v in cell.values.items()),
                *([""] * 10 if pr is None else [
                    ";".join(pr.folds), pr.n, pr.left_out, num(pr.mean),
                    "" if pr.ci is None else num(pr.ci[0]), "" if pr.ci is None else num(pr.ci[1]),
                    "" if pr.ci is None else str(pr.excludes_zero).lower(), num(pr.p), pr.nonzero,
                    "; ".join(pr.notes)]),
                *(["", ""] if pr is None and res is None else [c.bootstrap, c.seed]),
                row.label, row.n_instances, "" if entry is None else num(entry.seed_sd),
                *([""] * 10 if res is None else [
                    res.n_instances, res.n_cases, entry.left_out + res.cases_left_out, num(res.mean_difference),
                    num(res.ci[0]), num(res.ci[1]), num(res.p), num(res.p_holm), res.verdict,
                    str(res.seeds_disagree).lower()]),
                "" if entry is None else "; ".join(entry.notes),
            ])
    return buf.getvalue()
