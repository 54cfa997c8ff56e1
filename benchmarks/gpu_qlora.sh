#!/usr/bin/env bash
# QLoRA on a CUDA GPU, side by side with bf16 LoRA: the quickstart's stage 2 (SmolLM2-135M-Instruct, 100 steps,
# findings hint) trained in 4-bit NF4 and in bf16, each scored on the same 300 held-out ECG-QA questions, then the
# stage-2 speed/memory benchmark for both. Needs a synthetic (or real) cohort and a stage-1 encoder:
#
#   ENCODER=runs/quickstart/stage1/encoder OUT_DIR=runs/gpu_qlora bash benchmarks/gpu_qlora.sh
#
# Environment: PY (python, default .venv/bin/python), COHORT (default: generated into $OUT_DIR/cohort, 2000
# records, seed 0 — the quickstart's cohort), ENCODER (stage-1 encoder folder), OUT_DIR, STEPS (default 100),
# LLM (default packaged:smollm2-135m-instruct), NUM_RECORDS.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT_DIR=${OUT_DIR:-runs/gpu_qlora}
STEPS=${STEPS:-100}
LLM=${LLM:-packaged:smollm2-135m-instruct}
NUM_RECORDS=${NUM_RECORDS:-2000}
COHORT=${COHORT:-$OUT_DIR/cohort}
: "${ENCODER:?set ENCODER to a stage-1 encoder folder, e.g. runs/quickstart/stage1/encoder}"
mkdir -p "$OUT_DIR"
if [ "${ALLOW_CPU:-0}" != 1 ]; then  # ALLOW_CPU=1 LLM=packaged:tiny-random-llama STEPS=2: a dry run of the plumbing
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'this check needs a CUDA GPU'; print(torch.cuda.get_device_name())"
fi

if [ ! -f "$COHORT/ptbxl_database.csv" ]; then
    "$PY" -m ecgllm data synth --out_dir "$COHORT" --num_records "$NUM_RECORDS" --seed 0
fi

for q in 4bit none; do
    run="$OUT_DIR/finetune_$q"
    start=$(date +%s)
    "$PY" -m ecgllm finetune --config configs/quickstart/finetune.yaml --data_root "$COHORT" \
        --encoder "$ENCODER" --output_dir "$run" --max_steps "$STEPS" --checkpoint_every "$STEPS" \
        --model.llm "$LLM" --model.quantization "$q" --model.dtype bfloat16
    echo "finetune $q: $(($(date +%s) - start)) s for $STEPS steps"
    "$PY" -m ecgllm eval-vqa --model_dir "$run/model" --ecgqa_root "$COHORT/ecgqa" \
        --out_dir "$OUT_DIR/vqa_$q" --sample 300 --seed 0
done

for q in none 4bit; do
    "$PY" benchmarks/bench_stage2.py --llm "$LLM" --quantization "$q" --dtype bfloat16 \
        --steps 20 --batch 8
done
