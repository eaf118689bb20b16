#!/usr/bin/env bash
# Train, evaluate and run inference of the three baseline bundles (fundus_disc_seg, skin_lesion_seg,
# hippocampus_seg) on ../shared/data (or $MEDSECURE_DATA_ROOT), one after another, from the repo root.
# Usage: scripts/train_bundles.sh [bundle ...]        e.g. scripts/train_bundles.sh skin_lesion_seg
# Logs: bundles/<name>/train_output.log (ignored by git); weights: bundles/<name>/models/model.pt;
# test metrics: bundles/<name>/eval/metrics.json (copy to docs/test_metrics.json when publishing new weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bundles=("$@")
[ ${#bundles[@]} -gt 0 ] || bundles=(fundus_disc_seg skin_lesion_seg hippocampus_seg)
for name in "${bundles[@]}"; do
    start=$(date +%s)
    python -m monai.bundle run --config_file "bundles/$name/configs/train.json" --bundle_root "bundles/$name" 2>&1 | tee "bundles/$name/train_output.log"
    echo "$name: training wall time $(( $(date +%s) - start )) s" | tee -a "bundles/$name/train_output.log"
    python -m monai.bundle run --config_file "bundles/$name/configs/evaluate.json" --bundle_root "bundles/$name"
done
