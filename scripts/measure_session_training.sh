#!/bin/bash
# Session training measured (issue 19, item 4): fine-tune a model on simulated sessions
# WITHOUT their truth, then score attribution and localization before / after on
# sessions never trained on.
#   scripts/measure_session_training.sh MODEL_DIR SESSIONS_ROOT [EPOCHS]
# SESSIONS_ROOT holds s100 .. s116 (session.gerbil.h5 + session.truth.h5 each, from
# `napari-gerbil simulate session --duration 240 --n-animals 2`): s100-s114 (1 h) train,
# s115-s116 test. Writes MODEL_DIR-sessions (the fine-tune) and, in $WORK (default: a
# new temporary folder), copies sNNN-before/after.gerbil.h5 of the test sessions that
# localize fills in (the inputs are never changed).
set -euo pipefail
MODEL=$1; ROOT=$2; EPOCHS=${3:-3}
NG="${NG:-napari-gerbil}"
PY="${PY:-python}"
OUT="${MODEL%/}-sessions"
WORK="${WORK:-$(mktemp -d)}"
train=(); for s in $(seq 100 114); do train+=("$ROOT/s$s/session.gerbil.h5"); done
echo "== fine-tune on ${#train[@]} sessions (no truth), $EPOCHS epochs"
start=$(date +%s)
$NG train --finetune "$MODEL" --sessions "${train[@]}" --epochs "$EPOCHS" --out "$OUT"
echo "fine-tune wall: $(( $(date +%s) - start )) s"
# the fine-tune starts from the parent's attribution.yaml: fit it again for the new model
$NG calibrate --model "$OUT" --calls 2048 --overwrite --quiet
for tag in before after; do
  M=$MODEL; [ "$tag" = after ] && M=$OUT
  for s in 115 116; do
    d="$ROOT/s$s"
    cp "$d/session.gerbil.h5" "$WORK/s$s-$tag.gerbil.h5"
    start=$(date +%s)
    echo "== $tag s$s ($M)"
    $NG localize "$WORK/s$s-$tag.gerbil.h5" --model "$M" --truth "$d/session.truth.h5" --redo --quiet
    echo "localize wall: $(( $(date +%s) - start )) s"
  done
  $PY - "$ROOT" "$WORK" "$tag" <<'PY'
import sys
import numpy as np
from napari_gerbil.io.session import load_session
from napari_gerbil.simulate.truth import load_truth
root, work, tag = sys.argv[1:]
err = []
for s in (115, 116):
    sess = load_session(f"{work}/s{s}-{tag}.gerbil.h5")
    truth = load_truth(f"{root}/s{s}/session.truth.h5")
    err.append(np.linalg.norm(sess.predictions.point_mm - truth.source_mm[:, :2], axis=1))
err = np.concatenate(err)
print(f"{tag}: median localization error {np.nanmedian(err):.1f} mm over {np.isfinite(err).sum()} calls")
PY
done
