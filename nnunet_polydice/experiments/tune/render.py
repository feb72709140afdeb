"""The study's outcome as text: the live lines, the verdict, the trial and setting tables (Markdown, CSV), the
plot of the reported curves, and the output files ``tune.md``, ``tune.csv``, ``tune_curves.png`` and
``tune_settings.csv``.
"""

from __future__ import annotations

import csv
import io
import shlex
from collections.abc import Sequence
from pathlib import Path

from nnunet_polydice.experiments import checks, racing
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.experiments.layout import FOREGROUND
from nnunet_polydice.experiments.outputs import OwnedFolder
from nnunet_polydice.experiments.tune.report import Summary, TrialRow
from nnunet_polydice.experiments.tune.setup import TuneSetup
from nnunet_polydice.experiments.tune.space import Setting
from nnunet_polydice.integration.naming import format_k, parse_number, parse_trainer_name

__all__ = ["OUTPUT_FILES", "live_line", "verdict_lines", "trials_table", "settings_table", "cost_lines",
           "trials_csv", "settings_csv", "markdown", "next_commands", "plot_curves", "check_outputs_free",
           "write_outputs"]

OUTPUT_FILES = ("tune.md", "tune.csv", "tune_curves.png", "tune_settings.csv")


def live_line(number: int, setting: Setting | None, state: str, value: float | None = None, note: str = "") -> str:
    """``trial   3  nnUNetTrainerPolyDice  K=3 eps=0.5    RUNNING   0.6123  fold 0 epoch 4/30``."""
    family = setting.family if setting else "?"
    what = setting.label if setting else ""
    shown = "" if value is None else f"{value:.4f}"
    return f"trial {number:3d}  {family:26s} {what:16s} {state:9s} {shown:7s}  {note}".rstrip()


def _short(trainer: str) -> str:
    spec = parse_trainer_name(trainer)
    return trainer if spec is None or spec.K is None else f"K={format_k(spec.K)} eps={spec.epsilon:g}"


def _stop_text(stop: str) -> str:
    return {racing.SEPARATED: "stopped: the leader was told apart from every rival",
            racing.EXHAUSTED: "stopped: every (fold, seed) run was used",
            racing.BUDGET: "stopped: the next round of runs would exceed the budget"}.get(stop, stop)


def verdict_lines(summary: Summary) -> list[str]:
    """What was found, with the noise known, in sentences."""
    s, lines = summary.setup, []
    sd, dof = summary.noise
    if summary.look is None:
        if summary.best is None:
            lines.append("No completed trial yet.")
        else:
            lines.append(f"Best: {summary.best.trainer}  validation Dice {summary.best.value:.4f} (trial "
                         f"{summary.best.number})")
    else:
        look = summary.look
        n, leader = look.n, look.leader
        mean = look.means[leader]
        cis = "; ".join(f"{_short(r.setting)} {r.difference:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]"
                        for r in look.rivals if r.setting in look.remaining)
        untried = f"not yet tried (no finished run): {', '.join(map(_short, summary.untried))}"
        if len(look.remaining) == 1 and not look.rivals and not summary.left:
            lines.append(f"Leader: {leader}  mean validation Dice {mean:.4f} over {n} (fold, seed) runs; no winner "
                         f"is named: no other setting has finished runs to be told apart from"
                         + (f" ({untried})" if summary.untried else "") + ".")
        elif len(look.remaining) == 1:
            lines.append(f"Winner: {leader}  mean validation Dice {mean:.4f} over {n} (fold, seed) runs, told "
                         f"apart from every other contender with runs ({len(look.rivals) + len(summary.left)})"
                         + (f" (separated: {', '.join(map(_short, summary.left))})" if summary.left else ""))
            if summary.untried:
                lines.append(f"The winner of the settings with runs: {untried}.")
        else:
            others = [x for x in look.remaining if x != leader]
            default = summary.default_among(look.remaining)
            among = f"; the default setting {_short(default)} is among them" if default else ""
            lines.append(f"No single winner: the leader {leader} (mean validation Dice {mean:.4f} over {n} "
                         f"(fold, seed) runs) could not be told apart from {', '.join(map(_short, others))}: any "
                         f"of these{among}.")
            lines.append(f"Leader - rival on the same {n} runs, {racing.LEVEL:.0%} CI"
                         f" ({look.rivals[0].unit if look.rivals else 'instances'}): {cis}")
            if not look.seed_noise_seen:
                lines.append("These intervals see no run-to-run noise yet (one seed per fold among the common "
                             "runs): racing needs two seeds on every fold before it separates anything.")
        if summary.stop:
            lines.append(f"Race: {_stop_text(summary.stop)}.")
    if sd is None:
        lines.append("Noise: none known. Every setting has one run per fold, so a gap between settings may be "
                     "run-to-run noise; give --seeds 0 1 2 to measure it and race the best ones"
                     if not s.seeded else "Noise: none known yet (no setting has two seeds on one fold).")
    else:
        gap = ""
        if summary.look is not None and len(summary.look.means) > 1:
            ranked = sorted(summary.look.means.values(), reverse=True)
            gap = f"; the gap from the leader to the runner-up is {ranked[0] - ranked[1]:.4f}"
        lines.append(f"Noise: run-to-run sd of one setting's validation Dice {sd:.4f} (pooled within setting "
                     f"and fold over seeds, {dof} degrees of freedom){gap}.")
    return lines


def trials_table(summary: Summary) -> str:
    """A Markdown table of the trials."""
    lines = ["| trial | state | family | K | epsilon | runs | value | last report (step) | epochs trained "
             "| reused runs | note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary.rows:
        step, last = r.last
        s = r.setting
        lines.append(f"| {r.number} | {r.state} | {s.family if s else '?'} | {s.K if s else ''} | "
                     f"{'' if s is None else f'{parse_number(s.epsilon):g}'} | {' '.join(r.instances)} | "
                     f"{'' if r.value is None else f'{r.value:.4f}'} | "
                     f"{'' if last is None else f'{last:.4f} ({step})'} | {r.epochs_trained} | "
                     f"{' '.join(r.reused_folds)} | {r.reason} |")
    return "\n".join(lines)


def settings_table(summary: Summary) -> str:
    """A Markdown table of the settings over their (fold, seed) runs."""
    lines = ["| setting | runs | mean Dice | seed sd | status |", "|---|---|---|---|---|"]
    for row in summary.settings:
        mean, sd = row.mean, row.seed_sd
        lines.append(f"| {row.setting.trainer} | {len(row.values)} | {'' if mean is None else f'{mean:.4f}'} | "
                     f"{'' if sd is None else f'{sd:.4f}'} | {row.status} |")
    return "\n".join(lines)


def cost_lines(summary: Summary) -> list[str]:
    s = summary.setup
    share = summary.iterations_spent / summary.full_grid_iterations if summary.full_grid_iterations else 0.0
    seeds = f" x {len(s.seeds)} seeds" if s.seeded else ""
    budget = "" if summary.budget is None else \
        f" of a budget of {summary.budget} ({summary.budget / summary.full_grid_iterations:.0%} of the grid)"
    lines = [f"training iterations spent: {summary.iterations_spent}{budget} (epochs trained x {s.iterations} "
             f"iterations), {share:.1%} of the full grid's {summary.full_grid_iterations} ({s.space.size} settings "
             f"x {len(s.folds)} folds{seeds} x {s.epochs} epochs x {s.iterations} iterations)"]
    reused = summary.reused
    if reused:
        lines.append("reused finished runs (0 iterations): " + ", ".join(
            f"trial {r.number} {r.trainer} {'fold' if not s.seeded else 'run'} {' '.join(r.reused_folds)}"
            for r in reused))
    if summary.sampler_note:
        lines.append(f"sampler {summary.sampler_note}")
    if s.replay is not None:
        lines.append(f"replayed from the finished runs of {s.replay}: nothing was trained; the iterations above are "
                     f"what the live tune would have spent")
    return lines


def trials_csv(summary: Summary) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trial", "state", "trainer", "family", "K", "epsilon", "value", "last_step", "last_value",
                "epochs_trained", "reused_folds", "note", "runs", "phase"])
    for r in summary.rows:
        step, last = r.last
        s = r.setting
        w.writerow([r.number, r.state, r.trainer, s.family if s else "", s.K if s else "",
                    "" if s is None else repr(parse_number(s.epsilon)), "" if r.value is None else repr(r.value),
                    "" if step is None else step, "" if last is None else repr(last), r.epochs_trained,
                    " ".join(r.reused_folds), r.reason, " ".join(r.instances), r.phase])
    return buf.getvalue()


def settings_csv(summary: Summary) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trainer", "runs", "mean", "seed_sd", "status", "values"])
    for row in summary.settings:
        w.writerow([row.setting.trainer, len(row.values), "" if row.mean is None else repr(row.mean),
                    "" if row.seed_sd is None else repr(row.seed_sd), row.status,
                    " ".join(f"{Instance.of(i).key}={v!r}" for i, v in row.values.items())])
    return buf.getvalue()


def markdown(summary: Summary, plot_name: str) -> str:
    s = summary.setup
    what = f"mean[{s.label_key}] ({s.label})" if s.label else FOREGROUND
    over = (f"(fold, seed) runs, folds {', '.join(s.folds)} x seeds {' '.join(map(str, s.seeds))} (seed-major)"
            if s.seeded else f"folds {', '.join(s.folds)}")
    title = "Tuning" if s.replay is None else f"Tuning (a replay of {s.replay}: nothing trained)"
    parts = [f"# {title}: {s.dataset}, {s.configuration}, plans {s.plans}, study {s.study}", "",
             f"Value: mean over {over} of nnU-Net's validation Dice ({what} of validation/summary.json). "
             f"Pruned with `{s.pruner}`" + (", raced on more seeds while the leader and a rival cannot be told "
                                             "apart." if s.race else "."), "",
             *verdict_lines(summary), "", *[f"- {line}" for line in cost_lines(summary)], ""]
    if summary.settings:
        parts += ["## Settings", "", settings_table(summary), ""]
    parts += ["## Trials", "", trials_table(summary), "", f"![reported values per epoch]({plot_name})", ""]
    if summary.winner is not None:
        parts += ["Next:", "", "```", *next_commands(s, summary.winner), "```", ""]
    return "\n".join(parts)


def next_commands(setup: TuneSetup, trainer: str) -> list[str]:
    """The commands after tuning: train the best setting on all five folds, then predict with it."""
    extra = (["-p", setup.plans] if setup.plans != "nnUNetPlans" else [])
    device = ["--device", setup.device] if setup.device else []
    sweep = ["nnunet-polydice", "sweep", setup.dataset, setup.configuration, "--trainers", trainer,
             "--folds", "0", "1", "2", "3", "4", *extra, *device]
    predict = ["nnUNetv2_predict", "-i", "INPUT_FOLDER", "-o", "OUTPUT_FOLDER", "-d", setup.dataset, "-c",
               setup.configuration, "-tr", trainer, "-p", setup.plans, "-f", "0", "1", "2", "3", "4"]
    if setup.device:
        predict += ["-device", setup.device]
    return [shlex.join(sweep), shlex.join(predict)]


def plot_curves(rows: Sequence[TrialRow], path: Path, setup: TuneSetup) -> None:
    """Each trial's reported values against the step; pruned trials dashed, ending in an x; completed ones
    end in a dot at their validation Dice (one step after their last report); reused runs are a star at
    their validation Dice after the last step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        if not r.curve:
            if r.value is not None:  # reused finished runs: their validation Dice at the end
                ax.plot(setup.max_resource, r.value, "*", ms=10,
                        label=f"{r.number}: {r.setting.label if r.setting else '?'} (reused)")
            continue
        steps = sorted(r.curve)
        ys = [r.curve[s] for s in steps]
        pruned = r.state == "PRUNED"
        (line,) = ax.plot(steps, ys, ls="--" if pruned else "-", lw=1.2,
                          label=f"{r.number}: {r.setting.label if r.setting else '?'} ({r.state.lower()})")
        if pruned:
            ax.plot(steps[-1], ys[-1], "x", color=line.get_color(), ms=9, mew=2)
        elif r.value is not None:
            ax.plot(steps[-1] + 1, r.value, "o", color=line.get_color())
    for k in range(1, len(setup.folds)):
        ax.axvline(k * setup.epochs - 0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("step = fold index x epochs + epoch" if len(setup.folds) > 1 else "epoch")
    ax.set_ylabel(f"Dice{' of ' + setup.label if setup.label else ''}: lines EMA pseudo-Dice (reported), "
                  f"dots and stars validation Dice", fontsize=8)
    ax.set_title(f"{setup.study}: reported values (dashed + x: pruned; dot: validation Dice; star: reused)", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check_outputs_free(setup: TuneSetup) -> None:
    """Refuse, before any study is opened or trial run, an output folder with a file of :data:`OUTPUT_FILES`
    that ``tune`` did not write there (:func:`checks.check_files_free`).

    Raises:
        FileExistsError: naming the file.
    """
    checks.check_files_free(setup.out_dir, OUTPUT_FILES, OwnedFolder(setup.out_dir, "tune").owned(), "tune",
                            "--out" if setup.out_given else "the output folder")


def write_outputs(summary: Summary) -> list[Path]:
    """``tune.md``, ``tune.csv`` (trials), ``tune_curves.png`` and ``tune_settings.csv`` (settings over their
    (fold, seed) runs) in the setup's output folder; only files this tool
    wrote there before are overwritten (:class:`~nnunet_polydice.experiments.outputs.OwnedFolder`).

    Raises:
        FileExistsError: when one of them exists and was not written by ``tune``.
    """
    folder = OwnedFolder(summary.setup.out_dir, "tune")
    folder.claim(OUTPUT_FILES)
    out = summary.setup.out_dir
    plot_curves(summary.rows, out / OUTPUT_FILES[2], summary.setup)
    (out / OUTPUT_FILES[1]).write_text(trials_csv(summary), encoding="utf-8")
    (out / OUTPUT_FILES[3]).write_text(settings_csv(summary), encoding="utf-8")
    (out / OUTPUT_FILES[0]).write_text(markdown(summary, OUTPUT_FILES[2]), encoding="utf-8")
    folder.commit(OUTPUT_FILES)
    return [out / f for f in OUTPUT_FILES]
