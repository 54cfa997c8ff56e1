#!/usr/bin/env bash
# Stage-2 variants side by side: each line of VARIANTS (name, then `ecgllm finetune` overrides) trains the
# quickstart's stage 2 (configs/quickstart/finetune.yaml) and scores every single-verify/choose question of the
# cohort's SPLIT (default valid: variants are chosen there; SPLIT=test only for the one labelled headline run)
# with the aux-head answerer and the majority baseline beside it. Fast on a GPU (~2 min a variant on
# an H100), ~16 min a variant on 2 CPU cores.
#
#   ENCODER=runs/quickstart/stage1/encoder C=runs/quickstart/cohort bash benchmarks/stage2_variants.sh
#
# Environment: PY (default .venv/bin/python), C (cohort; generated there if missing: 2000 records, seed 0), ENCODER,
# OUT (run folder, default runs/stage2_variants), SPLIT (valid or test, default valid),
# DEV (cuda or cpu, default cuda), VARIANTS (default
# benchmarks/stage2_variants.txt).
set -uo pipefail
PY=${PY:-.venv/bin/python}
C=${C:-runs/stage2_variants/cohort}
OUT=${OUT:-runs/stage2_variants}
VARIANTS=${VARIANTS:-benchmarks/stage2_variants.txt}
SPLIT=${SPLIT:-valid}
case "$SPLIT" in valid) ROLE="selection (valid)" ;; test) ROLE="HEADLINE (test, one run of the chosen setting)" ;;
  *) echo "SPLIT must be valid or test, got $SPLIT"; exit 1 ;; esac
: "${ENCODER:?set ENCODER to a stage-1 encoder folder, e.g. runs/quickstart/stage1/encoder}"
mkdir -p "$OUT"
[ -f "$C/ptbxl_database.csv" ] || $PY -m demo.cli data synth --out_dir "$C" --num_records 2000 --seed 0 || exit 1
C=$C SPLIT=$SPLIT $PY - "$OUT/ids_$SPLIT.json" <<'PY'
import json, os, sys
from encoder.datasets.ecgqa import load_ecgqa
ds = load_ecgqa(os.environ["C"] + "/ecgqa", split=os.environ["SPLIT"])
ids = [int(r["sample_id"]) for r in ds if r["question_type"] in ("single-choose", "single-verify")]
json.dump(ids, open(sys.argv[1], "w"))
print(len(ids), os.environ["SPLIT"], "questions")
PY
run() {  # name, then finetune overrides
  name=$1; shift
  t0=$(date +%s)
  $PY -m demo.cli finetune --config configs/quickstart/finetune.yaml --data_root "$C" --encoder "$ENCODER" \
     --output_dir "$OUT/ft_$name" --checkpoint_every 1000 "$@" > "$OUT/ft_$name.log" 2>&1 \
     || { echo "== $name: finetune failed"; tail -5 "$OUT/ft_$name.log"; return; }
  t1=$(date +%s)
  $PY -m demo.cli eval-vqa --model_dir "$OUT/ft_$name/model" --ecgqa_root "$C/ecgqa" --out_dir "$OUT/vqa_${name}_$SPLIT" \
     --split "$SPLIT" --sample_file "$OUT/ids_$SPLIT.json" --baselines '[majority,aux_head]' --device "${DEV:-cuda}" --batch_size 64 \
     > "$OUT/vqa_${name}_$SPLIT.log" 2>&1 || { echo "== $name: eval failed"; tail -5 "$OUT/vqa_${name}_$SPLIT.log"; return; }
  echo "== $name ($*) [$ROLE] train $((t1 - t0)) s, eval $(($(date +%s) - t1)) s  [LLM | aux head | majority]"
  grep -E "^\| (single|\*\*overall)" "$OUT/vqa_${name}_$SPLIT/report.md" | head -3
}
while read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  eval run "$line"
done < "$VARIANTS"
