"""``nnunet-polydice demo``: Poly Dice against nnU-Net's default trainer on embedded data, end to end."""

from __future__ import annotations

import argparse
import sys
import time

from nnunet_polydice.experiments import checks, demo, sweep

_CPU_MIN = demo.estimate_cpu_seconds(*demo.CPU_SCHEDULE) / 60


def _say(text: str) -> None:
    print(text, flush=True)  # flushed: nnU-Net's commands write to the same stdout right after


def _device(choice: str) -> str:
    if choice == "cpu":
        return "cpu"
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no GPU; use --device cpu (or auto).")
    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args) -> int:
    start = time.monotonic()
    device = _device(args.device)
    schedule = sweep.parse_schedule(args.schedule) if args.schedule else demo.default_schedule(device)
    n = len(dict.fromkeys(args.trainers))
    if device == "cpu" and args.variant == "full" and args.data == "colin27":
        minutes = demo.estimate_cpu_seconds(*schedule, n_trainers=n) / 60
        expected = f"expected about {minutes:.0f} min on 2 idle CPU cores (less when the plans exist)"
    else:
        expected = "no time estimate for this setting"
    _say(f"nnunet-polydice demo: {args.data} ({args.variant}), schedule {schedule[0]}x{schedule[1]}, device "
         f"{device}, work folder {args.work}; {expected}")
    try:
        result = demo.run_demo(args.work, data=args.data, fold=args.fold, schedule=schedule, trainers=args.trainers,
                               device=device, variant=args.variant, echo=_say,
                               seed=None if args.seed == "none" else checks.check_seed(args.seed))
    except demo.DemoStepError as err:
        print(f"\nnnunet-polydice demo: error: {err}", file=sys.stderr, flush=True)
        _say(f"Elapsed {time.monotonic() - start:.0f} s. Once the cause is fixed, the same command goes on from where "
             f"it stopped (finished trainings are kept).")
        return 1
    _say("")
    _say(result.table)
    _say(f"\nWrote {result.table_file}")
    _say(f"Wrote {result.picture} (held-out slices: image, reference, each trainer's prediction)")
    if result.curves:
        _say(f"Wrote the learning curves to {result.curves[0].parent}:")
        for path in result.curves:
            _say(f"  {path.name}")
    if result.skipped_training:
        _say(f"Training skipped (finished before): {', '.join(result.skipped_training)}")
    elapsed = time.monotonic() - start
    _say(f"Demo finished in {elapsed / 60:.1f} min ({elapsed:.0f} s).")
    _say("\nTo go on with the demo's nnU-Net folders (compare and curves of its runs, a prediction with its "
         "Poly Dice model, the same trainers over all folds and three seeds):")
    for line in demo.next_steps(result):
        _say("  " + line)
    return 0


def register(sub) -> None:
    cpu = demo.CPU_SCHEDULE
    gpu = demo.GPU_SCHEDULE
    p = sub.add_parser(
        "demo",
        help="train Poly Dice and nnU-Net's default trainer on embedded data, predict a held-out fold, print Dice, "
             "draw the predictions and learning curves",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run nnU-Net end to end on an embedded real data set, in a work folder of its own (nothing of your\n"
            "nnUNet_raw/nnUNet_preprocessed/nnUNet_results is read or changed):\n"
            "  1. write the data, plan and preprocess it (2d), add the smaller '2d_cpu' configuration and the\n"
            "     contiguous-block splits;\n"
            "  2. train nnUNetTrainerPolyDice and nnU-Net's nnUNetTrainer on the other folds with nnUNetv2_train\n"
            "     (names with the schedule suffix _<E>ep<I>it and the seed suffix _s0: seeded, repeatable runs);\n"
            "  3. copy the held-out fold's images to <work>/heldout_fold<f>/imagesTs (labels to labelsTs);\n"
            "  4. predict them with nnUNetv2_predict into <work>/predictions/<trainer>;\n"
            "  5. print the Dice of each class (pooled over the held-out slices, and the mean per slice) and\n"
            "     write it to <work>/demo_dice.md;\n"
            f"  6. draw <work>/{demo.PICTURE}: up to {demo.MAX_SLICES} held-out slices (per class the slice with the\n"
            "     most reference pixels of it, then those with the most reference foreground), each with the\n"
            "     image, the reference outline and each trainer's prediction outlined, and the learning curves\n"
            f"     of the trained runs (nnU-Net's training_log_*.txt) into <work>/{demo.CURVES_FOLDER}/.\n"
            "Run it again to resume: finished trainings are skipped, interrupted ones continued (--c).\n"
            "Checked before anything runs: the trainer names (with nnU-Net's own lookup), the work folder, and\n"
            "nnU-Net's commands (on PATH, or beside this Python when the tool is run by its full path).\n\n"
            f"Default schedule: {cpu[0]}x{cpu[1]} on the CPU ({cpu[0] * cpu[1]} iterations per trainer; "
            f"expected about {_CPU_MIN:.0f} min\n"
            f"for the whole demo on 2 idle CPU cores with the full colin27 data: planning ~{demo.PLAN_SECONDS} s, per "
            "trainer\n"
            f"~{demo.TRAIN_OVERHEAD_SECONDS} s start-up and validation, {demo.SECONDS_PER_ITERATION:.2f} s per "
            f"iteration, ~{demo.PREDICT_SECONDS} s prediction; timed: 6 min 10 s), "
            f"{gpu[0]}x{gpu[1]} on a GPU (--device cuda\nor auto with a GPU). This short budget shows how fast each "
            "loss finds small structures,\nnot final accuracy (use 'nnunet-polydice sweep' over several folds for "
            "that)."))
    p.add_argument("--work", default="polydice_demo",
                   help="work folder of the demo: a new or empty folder inside an existing one (created), or the "
                        f"folder of an earlier demo ({demo.MARKER} in it: a rerun resumes there); a folder of other "
                        "files is refused. Default: ./polydice_demo")
    p.add_argument("--data", choices=sorted(demo.DEMO_DATA), default="colin27",
                   help="embedded data set: colin27 (Colin27/AAL coronal slices, hippocampus and amygdala; "
                        "default) or dsb2018 (nuclei, the balanced control)")
    p.add_argument("--fold", default=None,
                   help="held-out fold (default: 3 for colin27, the only block with both hippocampus and "
                        "amygdala; 0 for dsb2018)")
    p.add_argument("--schedule", metavar="ExI",
                   help=f"E epochs of I iterations (default {cpu[0]}x{cpu[1]} on CPU, {gpu[0]}x{gpu[1]} on GPU)")
    p.add_argument("--trainers", nargs="+", default=list(demo.DEMO_TRAINERS), metavar="NAME",
                   help="trainers to compare, without schedule suffix (default: "
                        + " ".join(demo.DEMO_TRAINERS) + ")")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): cuda when torch sees a GPU, else cpu")
    p.add_argument("--seed", default=str(demo.DEMO_SEED), metavar="N",
                   help=f"train the seeded names <trainer>_<E>ep<I>it_s<N> (default {demo.DEMO_SEED}: on a CPU the "
                        "demo's numbers and picture are the same every run); 'none' trains unseeded, as nnU-Net does")
    p.add_argument("--variant", choices=("full", "tiny"), default="full",
                   help="full (default) or tiny (a few small slices, for tests: use with --schedule 1x2)")
    p.set_defaults(func=run)
