#!/usr/bin/env bash
# Trains the tabular grid shipped in nnunet_polydice/data/grids/colin27_2d_cpu_12x40 (tune --replay's real grid):
# embedded Colin27/AAL slices (data set 731), configuration 2d_cpu, folds 1 and 3, seeds 0 1 2, schedule 12x40,
# nnUNetTrainerPolyDice over K {1, 2, 3, inf} x epsilon {0, 1}, nnUNetTrainer and nnUNetTrainerPolyDiceCE.
#
#   scripts/train_tabular_grid.sh WORK [SRC]
#
# WORK: the work folder (made with the embedded data set, plans and 2d_cpu when missing). SRC: the source tree
# whose package trains (default: this checkout); pass a frozen copy (git worktree) to go on editing this one.
# Seed-major order, the core settings K {1, 2, inf} x {0, 1} and nnUNetTrainer first, so that an interrupted
# run leaves whole seeds behind; run it again and finished runs are skipped (sweep's own rule), a started one
# is continued. After every sweep, scripts/ship_grid.py copies what is finished into the shipped folder.
set -euo pipefail
WORK=$(realpath -m "${1:?usage: $0 WORK [SRC]}")
SRC=$(realpath "${2:-$(dirname "$0")/..}")
export PYTHONPATH="$SRC" NNUNET_POLYDICE_NO_HOOK=1 nnUNet_extTrainer="$SRC/trainers"
export nnUNet_raw="$WORK/nnUNet_raw" nnUNet_preprocessed="$WORK/nnUNet_preprocessed" nnUNet_results="$WORK/nnUNet_results"
export nnUNet_n_proc_DA=1 nnUNet_def_n_proc=1
python -c "from nnunet_polydice.experiments.workspace import prepare_embedded; prepare_embedded('731', '$WORK')"
common=(731 2d_cpu --folds 1 3 --schedule 12x40 --device cpu)
for seed in 0 1 2; do
    nnunet-polydice sweep "${common[@]}" --seeds "$seed" --families nnUNetTrainerPolyDice --K 1 2 inf --epsilon 0 1 \
        --baselines nnUNetTrainer
    python "$(dirname "$0")/ship_grid.py" "$WORK"
done
for seed in 0 1 2; do
    nnunet-polydice sweep "${common[@]}" --seeds "$seed" --families nnUNetTrainerPolyDice --K 3 --epsilon 0 1 \
        --baselines nnUNetTrainerPolyDiceCE
    python "$(dirname "$0")/ship_grid.py" "$WORK"
done
