#!/usr/bin/env bash
# Recipe search for the `cpu` preset's defense (results/recipe_search/): eight variants of batch
# size, peak learning rate, weight decay and seed, each `scfront train --preset cpu` on the same
# 12,500 training images (data.train_limit), all started at once, then their table
# (scripts/training_table.py, best monitor accuracy first).
#
# usage: scripts/recipe_search.sh DATA_ROOT OUT [DEVICE] [-- EXTRA_TRAIN_OPTIONS...]
#   DATA_ROOT  folder holding cifar10/ (its train and test sets)
#   OUT        gets one run folder per variant (OUT/NAME) and its log (OUT/NAME.log)
#   DEVICE     torch device of every run (default: cuda; the committed runs shared one H200)
#   options after -- go to every `scfront train`, after the variant's own (e.g. a quick dry run:
#   -- --set train.epochs=1 --set data.train_limit=256 --set data.monitor_images=64)
# PYTHON: the interpreter with scfront installed (default: python3).
# Rerunning the same command resumes every run from its last finished epoch.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '7,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
DATA_ROOT=$1
OUT=$2
shift 2
DEVICE=cuda
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    DEVICE=$1
    shift
fi
if [ $# -gt 0 ]; then
    if [ "$1" != "--" ]; then
        echo "recipe_search.sh: error: unexpected argument '$1' (extra train options follow --)" >&2
        exit 2
    fi
    shift
fi
EXTRA=("$@")
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$DATA_ROOT" ]; then
    echo "recipe_search.sh: error: data root $DATA_ROOT is not a directory" >&2
    exit 2
fi
mkdir -p "$OUT"

# NAME and its overrides of the cpu preset (batch 128, peak rate 0.02, weight decay 5e-4, seed 2021)
VARIANTS=(
    "ref"
    "ref_s1 --set train.seed=1"
    "b64 --set train.batch_size=64"
    "b64_s1 --set train.batch_size=64 --set train.seed=1"
    "b64_lr03 --set train.batch_size=64 --set train.lr_max=0.03"
    "b128_lr03 --set train.lr_max=0.03"
    "wd1e4 --set train.weight_decay=1e-4"
    "b64_wd2e4 --set train.batch_size=64 --set train.weight_decay=2e-4"
)

NAMES=()
PIDS=()
for variant in "${VARIANTS[@]}"; do
    read -r -a words <<< "$variant"
    name=${words[0]}
    "$PYTHON" -m scfront.cli train --preset cpu --data-root "$DATA_ROOT" --device "$DEVICE" --no-progress \
        --set data.train_limit=12500 --out "$OUT/$name" "${words[@]:1}" ${EXTRA[@]+"${EXTRA[@]}"} \
        > "$OUT/$name.log" 2>&1 &
    NAMES+=("$name")
    PIDS+=($!)
    echo "started $name (log: $OUT/$name.log)"
done

FAILED=0
for k in "${!PIDS[@]}"; do
    if wait "${PIDS[$k]}"; then
        echo "finished ${NAMES[$k]}"
    else
        echo "${NAMES[$k]} failed; last lines of $OUT/${NAMES[$k]}.log:" >&2
        tail -n 3 "$OUT/${NAMES[$k]}.log" >&2
        FAILED=1
    fi
done
[ "$FAILED" = 0 ] || exit 1

RUNS=()
for name in "${NAMES[@]}"; do
    RUNS+=("$OUT/$name")
done
"$PYTHON" "$HERE/training_table.py" "${RUNS[@]}"
