#!/bin/bash
# mirg's own commands, unchanged, on a GPU machine: `mirg eval` of the embedded base on 200 one-image
# perception samples, then `mirg demo` (SFT 2 min, GRPO 1.5 min) and `mirg model pretrain-tiny --size m`
# (3.5 min) side by side. Copies the tables, summaries and logs to OUTDIR.
# Usage: bash benchmarks/gpu_smoke.sh OUTDIR [SCALE]   (SCALE multiplies every time budget; default 1)
# PY names the interpreter (default python3); NTRAIN the demo's training samples (default 12000).
set -u
OUTD=$1; S=${2:-1}; PY=${PY:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
W=/tmp/gw; rm -rf $W; mkdir -p $W $OUTD
m() { awk "BEGIN{print $1*$S}"; }
$PY - <<'PY' > $OUTD/env.txt 2>&1
import torch, transformers, trl, datasets, accelerate, pyarrow, fsspec
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("transformers", transformers.__version__, "trl", trl.__version__, "datasets", datasets.__version__, "accelerate", accelerate.__version__, "pyarrow", pyarrow.__version__)
PY
cat $OUTD/env.txt; grep -q "^transformers" $OUTD/env.txt || exit 1
# 1. eval of the embedded base on 200 one-image perception samples, on the GPU
$PY -m mirg data synth --out $W/perc --samples 200 --seed 777 --tasks perception --min-images 1 --max-images 1 --image-size 112 --id-prefix perc --overwrite > $W/synth.log 2>&1
$PY -m mirg eval --model embedded --data $W/perc --out $W/eval_perc --batch-size 32 > $W/eval_perc.log 2>&1
tr '\r' '\n' < $W/eval_perc.log | grep -v "^generating" | tail -30 > $OUTD/eval_perc.txt
# 2 and 3 side by side: the demo with longer stages, and pretrain-tiny size m
( timeout $(m 390) $PY -m mirg demo --out $W/demo --sft-minutes $(m 2) --grpo-minutes $(m 1.5) --n-train ${NTRAIN:-12000} > $W/demo.log 2>&1; echo "demo rc $?" >> $W/demo.log ) &
( timeout $(m 390) $PY -m mirg model pretrain-tiny --out $W/pt --minutes $(m 3.5) --size m --seed 0 > $W/pt.log 2>&1; echo "pt rc $?" >> $W/pt.log ) &
wait
for f in demo pt; do tr '\r' '\n' < $W/$f.log | grep -v "it/s\]$\|s/it\]$\|sample/s\]$\|img/s\]$" | tail -60 > $OUTD/$f.txt; done
cp $W/demo/summary.json $OUTD/demo_summary.json 2>/dev/null
cp $W/pt/pretrain_summary.json $OUTD/pt_summary.json 2>/dev/null
( cd $W && tar czf $OUTD/logs.tgz demo/logs pt/work/logs demo/*/trainer_state.json demo/*/*/trainer_state.json pt/work/stages/*/trainer_state.json pt/work/stages/*/vision_stage.json 2>/dev/null )
ls -la $OUTD
