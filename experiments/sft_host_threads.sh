#!/bin/bash
# SFT steps per second at the demo's settings (embedded base, batch 16, brief trajectories of 600 samples),
# N steps (default 30) per configuration: default threads, OMP_NUM_THREADS=1 and 4, and the GPU hidden;
# then a cProfile of one more run. Usage: bash experiments/sft_host_threads.sh OUTDIR  (PY, N: see above)
set -u
OUTD=$1; PY=${PY:-python3}; N=${N:-30}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
W=/tmp/gp; rm -rf $W; mkdir -p $W $OUTD
nproc > $OUTD/a_runs.txt
$PY -c "import torch;print('threads',torch.get_num_threads(), torch.cuda.is_available())" >> $OUTD/a_runs.txt
T0=$(date +%s)
$PY -m mirg data synth --out $W/train --samples 600 --seed 0 --id-prefix train --image-size 112 --overwrite > $W/synth.log 2>&1 || tail -3 $W/synth.log
$PY -m mirg data trajectories --data $W/train --out $W/traj --detail brief --coords norm1000 > $W/traj.log 2>&1 || tail -3 $W/traj.log
echo "data $(( $(date +%s) - T0 )) s" >> $OUTD/a_runs.txt
sft() { echo sft --model embedded --data $W/traj --output_dir $W/$1 --max_steps $N --learning_rate 5e-4 --per_device_train_batch_size 16 --save_strategy no --report_to none --logging_steps 10 --seed 0; }
rate() { $PY -c "import json,sys;h=json.load(open('$W/$1/trainer_state.json'))['log_history'];r=[x for x in h if 'train_runtime' in x][-1];print('$1', r['global_step'] if 'global_step' in r else '', 'steps', r['train_runtime'], 's', r['train_steps_per_second'], 'steps/s')"; }
for cfg in "default:" "omp1:OMP_NUM_THREADS=1" "omp4:OMP_NUM_THREADS=4" "cpu:CUDA_VISIBLE_DEVICES="; do
  name=${cfg%%:*}; envs=${cfg#*:}
  env $envs $PY -m mirg $(sft $name) > $W/$name.log 2>&1 || tail -3 $W/$name.log >> $OUTD/a_runs.txt
  rate $name >> $OUTD/a_runs.txt 2>&1
done
$PY -m cProfile -o $W/prof.out -m mirg $(sft prof) > $W/prof.log 2>&1 || tail -3 $W/prof.log >> $OUTD/a_runs.txt
$PY -c "
import pstats; p=pstats.Stats('$W/prof.out'); p.sort_stats('tottime').print_stats(35); p.sort_stats('cumulative').print_stats(60)" > $OUTD/b_prof.txt 2>&1
cat $OUTD/a_runs.txt
