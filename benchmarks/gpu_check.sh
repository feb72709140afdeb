#!/usr/bin/env bash
# GPU check: real nnUNetv2_train runs of nnUNetTrainerPolyDice against nnU-Net's nnUNetTrainer.
#
# On a CUDA machine with nnunet-polydice installed (pip install nnunet-polydice, or a checkout on
# PYTHONPATH), this script
#   1. writes the embedded Colin27/AAL 2D data set (Dataset731_Colin27HippoAmyg) into a work folder of
#      its own and runs nnU-Net's planning and preprocessing (2d, default nnU-Net plans) and the splits
#      (nnunet_polydice.experiments.workspace.prepare_embedded; the user's nnU-Net folders are not used);
#   2. trains fold 0, configuration 2d, with `nnUNetv2_train ... -tr nnUNetTrainerPolyDice_4ep100it`
#      and `-tr nnUNetTrainer_4ep100it` (4 epochs x 100 iterations, 20 validation iterations each; the
#      `_<E>ep<I>it` suffix is this package's, and works on nnU-Net's own trainers too) on `-device cuda`,
#      with mixed precision and torch.compile exactly as nnU-Net sets them (AMP autocast + GradScaler;
#      nnUNet_compile is left to the user, default on; our trainers compile their Dice term too);
#   3. reads nnU-Net's own "Epoch time" lines, drops the first epoch (it includes compilation), and
#      prints iterations per second (training iterations of an epoch / its epoch time; an nnU-Net epoch
#      time also holds its validation iterations), their ratio, and whether any train_loss/val_loss
#      was non-finite. Last line:
#        GPU_CHECK device=cuda schedule=4ep100it polydice_it_s=... nnunet_it_s=... ratio=... nonfinite=0 status=ok
#      (status: ok, partial or fail); ratio = polydice_it_s / nnunet_it_s. Exit status 0 only when both runs finished every epoch with
#      finite losses.
#
# Settings (environment variables, all optional):
#   GPU_CHECK_DEVICE          cuda (default); cpu runs the same steps without a GPU (no AMP, no compile:
#                             nnU-Net turns both off on CPU), to test the script itself
#   GPU_CHECK_SCHEDULE        4ep100it (default): the trainer-name suffix of both runs
#   GPU_CHECK_WORK            work folder (default: a new temporary folder); reused if given
#   GPU_CHECK_LOG_DIR         where the logs go (default: <work>/logs)
#   GPU_CHECK_FINAL_VAL       1 (default): nnUNetv2_train's final validation runs after training, as
#                             usual; 0: it is skipped (nnU-Net has no flag for that: the run then goes
#                             through nnU-Net's own entry point, run_training_entry, with the trainer's
#                             perform_actual_validation replaced by a no-op). Not part of the timing.
#   GPU_CHECK_TRAIN_TIMEOUT   seconds per training run, 0 (default) = none; a run stopped by it is
#                             reported from the epochs it finished (status=partial)
#   PYTHON                    the interpreter (default python3)
#   nnUNet_n_proc_DA          data-augmentation workers (default here 8: for a 16-core machine)
#   nnUNet_compile            left as you set it (nnU-Net's default: on)
#
# Example, CPU smoke test of the script:
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_SCHEDULE=2ep3it nnUNet_n_proc_DA=1 bash benchmarks/gpu_check.sh
set -uo pipefail

PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SCHEDULE=${GPU_CHECK_SCHEDULE:-4ep100it}
FINAL_VAL=${GPU_CHECK_FINAL_VAL:-1}
TRAIN_TIMEOUT=${GPU_CHECK_TRAIN_TIMEOUT:-0}
DATASET_KEY=Dataset731_Colin27HippoAmyg
CONFIGURATION=2d
FOLD=0
export nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-8}
export PYTHONUNBUFFERED=1

if [[ ! $SCHEDULE =~ ^[0-9]+ep[0-9]+it$ ]]; then
    echo "GPU_CHECK_SCHEDULE must look like 4ep100it, got '$SCHEDULE'" >&2
    exit 2
fi
if [[ -n ${GPU_CHECK_WORK:-} ]]; then
    WORK=$GPU_CHECK_WORK
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
fi
mkdir -p "$WORK" || exit 2
WORK=$(cd "$WORK" && pwd)
LOG_DIR=${GPU_CHECK_LOG_DIR:-$WORK/logs}
mkdir -p "$LOG_DIR" || exit 2

TRAINER_POLY=nnUNetTrainerPolyDice_$SCHEDULE
TRAINER_BASE=nnUNetTrainer_$SCHEDULE

echo "== gpu_check: environment"
"$PY" - "$DEVICE" <<'EOF' || { echo "GPU_CHECK status=fail reason=environment"; exit 1; }
import importlib.metadata as md
import os
import platform
import sys

import torch

device = sys.argv[1]
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"
import nnunet_polydice
print(f"python {platform.python_version()}  torch {torch.__version__}  nnunetv2 {version('nnunetv2')}  "
      f"nnunet-polydice {nnunet_polydice.__version__} ({os.path.dirname(nnunet_polydice.__file__)})")
print(f"nnUNet_compile={os.environ.get('nnUNet_compile', '(unset: nnU-Net compiles)')}  "
      f"nnUNet_n_proc_DA={os.environ.get('nnUNet_n_proc_DA')}  cpus={os.cpu_count()}")
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("CUDA is not available to torch (set GPU_CHECK_DEVICE=cpu for a CPU smoke test)")
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}, "
          f"CUDA {torch.version.cuda}")
elif device != "cpu":
    sys.exit(f"GPU_CHECK_DEVICE must be cuda or cpu, got {device!r}")
EOF

echo "== gpu_check: data, planning and preprocessing in $WORK"
t0=$(date +%s)
rm -f "$WORK/dataset_name.txt"
"$PY" - "$WORK" "$DATASET_KEY" <<'EOF' 2>&1 | tee "$LOG_DIR/prepare.log"
import sys
from pathlib import Path

from nnunet_polydice.experiments.workspace import prepare_embedded

name = prepare_embedded(sys.argv[2], sys.argv[1], configuration=None)
Path(sys.argv[1], "dataset_name.txt").write_text(name + "\n")
EOF
DATASET=$(cat "$WORK/dataset_name.txt" 2>/dev/null)
if [[ -z $DATASET || ! -f $WORK/nnUNet_preprocessed/$DATASET/splits_final.json ]]; then
    echo "GPU_CHECK status=fail reason=prepare (see $LOG_DIR/prepare.log)"
    exit 1
fi
echo "prepared $DATASET in $(( $(date +%s) - t0 )) s"

# nnU-Net's three folders and our trainers folder (nnUNet_extTrainer), for the training runs
ENV_EXPORTS=$("$PY" - "$WORK" <<'EOF'
import shlex
import sys

from nnunet_polydice.experiments.workspace import workspace_env

env = workspace_env(sys.argv[1], cpu=False)
for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
    print(f"export {key}={shlex.quote(env[key])}")
EOF
) || { echo "GPU_CHECK status=fail reason=environment"; exit 1; }
eval "$ENV_EXPORTS"

# Same arguments as nnUNetv2_train; with GPU_CHECK_FINAL_VAL=0 through nnU-Net's entry point with the
# final validation replaced by a no-op.
SKIP_VAL_ENTRY='import sys
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
def _skip_final_validation(self, *args, **kwargs):
    self.print_to_log_file("gpu_check: final validation skipped (GPU_CHECK_FINAL_VAL=0)")
nnUNetTrainer.perform_actual_validation = _skip_final_validation
from nnunetv2.run.run_training import run_training_entry
sys.argv[0] = "nnUNetv2_train"
sys.exit(run_training_entry())'

train() {  # train LABEL TRAINER
    local label=$1 trainer=$2 log=$LOG_DIR/$1.log rc start
    local args=("$DATASET" "$CONFIGURATION" "$FOLD" -tr "$trainer" -device "$DEVICE")
    local cmd
    if [[ $FINAL_VAL == 0 ]]; then
        cmd=("$PY" -c "$SKIP_VAL_ENTRY" "${args[@]}")
    elif command -v nnUNetv2_train >/dev/null 2>&1; then
        cmd=(nnUNetv2_train "${args[@]}")
    else
        cmd=("$PY" -m nnunetv2.run.run_training "${args[@]}")
    fi
    if [[ $TRAIN_TIMEOUT != 0 ]]; then
        # GNU timeout signals the whole process group: data-augmentation workers included
        cmd=(timeout -k 10 "$TRAIN_TIMEOUT" "${cmd[@]}")
    fi
    echo "== gpu_check: $label: nnUNetv2_train ${args[*]}"
    start=$(date +%s)
    "${cmd[@]}" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    echo "$label: exit status $rc, wall time $(( $(date +%s) - start )) s"
    echo "$rc" > "$LOG_DIR/$label.rc"
}

train polydice "$TRAINER_POLY"
train nnunet "$TRAINER_BASE"

echo "== gpu_check: results"
"$PY" - "$LOG_DIR" "$SCHEDULE" "$DEVICE" <<'EOF'
import math
import re
import sys
from pathlib import Path

log_dir, schedule, device = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
epochs, iterations = (int(x) for x in re.fullmatch(r"(\d+)ep(\d+)it", schedule).groups())

def read(label):
    text = (log_dir / f"{label}.log").read_text(errors="replace") if (log_dir / f"{label}.log").is_file() else ""
    rc_file = log_dir / f"{label}.rc"
    rc = int(rc_file.read_text().strip() or 1) if rc_file.is_file() else None
    times = [float(x) for x in re.findall(r"Epoch time: ([-+0-9.eE]+|nan|inf) s", text)]
    losses = {}
    for key in ("train_loss", "val_loss"):
        values = []
        for raw in re.findall(rf": {key} (\S+)", text):
            try:
                values.append(float(raw))
            except ValueError:
                values.append(float("nan"))
        losses[key] = values
    nonfinite = sum(not math.isfinite(v) for vs in losses.values() for v in vs)
    timed = times[1:] if len(times) > 1 else times  # the first epoch includes compilation
    it_s = iterations * len(timed) / sum(timed) if timed and sum(timed) > 0 else float("nan")
    batch = re.search(r"'batch_size': (\d+)", text)
    patch = re.search(r"'patch_size': \[([^\]]*)\]", text)
    return dict(rc=rc, times=times, timed=timed, it_s=it_s, nonfinite=nonfinite, losses=losses,
                compiled="Using torch.compile" in text, batch=batch.group(1) if batch else "?",
                patch=patch.group(1).replace(" ", "") if patch else "?")

runs = {label: read(label) for label in ("polydice", "nnunet")}
status = "ok"
for label, r in runs.items():
    print(f"{label}: exit status {r['rc']}, batch {r['batch']}, patch [{r['patch']}], "
          f"torch.compile {'on' if r['compiled'] else 'off'}")
    print(f"  epoch times (s): {r['times']}  (timed: epochs 2..{len(r['times'])})" if len(r['times']) > 1
          else f"  epoch times (s): {r['times']}  (first epoch included: no other)")
    print(f"  it/s per epoch: {[round(iterations / t, 2) for t in r['times'] if t > 0]}")
    print(f"  train_loss: {r['losses']['train_loss']}")
    print(f"  val_loss:   {r['losses']['val_loss']}")
    if r["rc"] != 0 or len(r["times"]) < epochs:
        status = "partial" if r["times"] and status != "fail" else "fail"
    if not r["times"]:
        status = "fail"
nonfinite = sum(r["nonfinite"] for r in runs.values())
p, n = runs["polydice"]["it_s"], runs["nnunet"]["it_s"]
ratio = p / n if math.isfinite(p) and math.isfinite(n) and n > 0 else float("nan")
print(f"GPU_CHECK device={device} schedule={schedule} polydice_it_s={p:.2f} nnunet_it_s={n:.2f} "
      f"ratio={ratio:.3f} nonfinite={nonfinite} status={status}")
sys.exit(0 if status == "ok" and nonfinite == 0 else 1)
EOF
