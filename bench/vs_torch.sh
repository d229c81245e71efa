#!/usr/bin/env bash
# latentlab against the PyTorch reference on the CPU, side by side in one run, each in its own
# default environment: nothing is set for one side that is not set for the other.
#
#   bench/vs_torch.sh                      5 rounds of steps, then one round of 3-epoch trainings
#   ROUNDS=5 BATCH=128 EPOCHS=3 TRAIN_ROUNDS=1 STEPS=200 WARMUP=20 bench/vs_torch.sh
#
# Steps: `latentlab bench` and `torch_ref.py --bench-only`, AE and VAE, the same batch, warm-up
# and step count, the order of the sides alternating from round to round. Trainings:
# `latentlab train` and `torch_ref.py` for EPOCHS epochs on all 60,000 images, evaluation
# included. PyTorch runs twice each time: as installed, and with `--flush-denormal`
# (torch.set_flush_denormal(True)), because latentlab flushes denormals by default and PyTorch
# does not (BENCHMARKS.md says why it matters). Each side uses the threads it picks by itself:
# latentlab rayon's default (every core), PyTorch torch.get_num_threads() as it comes up in the
# default environment, which torch_ref's --threads is set to (torch_ref would otherwise force 2).
#
# Needs the reference's Python (../shared/reference/README.md): TORCH_PY (default
# /tmp/torchref/bin/python) and TORCH_REF (default ../shared/reference/torch_ref.py). Writes
# OUT/vs_torch.{jsonl,json,md,log} (OUT default bench/out) and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5} batch=${BATCH:-128} epochs=${EPOCHS:-3} train_rounds=${TRAIN_ROUNDS:-1}
steps=${STEPS:-200} warmup=${WARMUP:-20}
py=${TORCH_PY:-/tmp/torchref/bin/python}
ref=${TORCH_REF:-../shared/reference/torch_ref.py}
out=${OUT:-bench/out}
threads=$(nproc)
# PyTorch's own default thread count, read in the default environment (torch_ref always calls
# set_num_threads, so it is told this number to leave the default as it is).
torch_threads=$("$py" -c 'import torch; print(torch.get_num_threads())')
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
jsonl="$out/vs_torch.jsonl"
: >"$jsonl"
exec > >(tee "$out/vs_torch.log") 2>&1
cargo build --release --quiet
bin=target/release/latentlab
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads cores; flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx512f\|avx2' | sort -u | xargs)"
"$py" -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())'
echo "environment: OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset} RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-unset}"

record() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(json.loads(sys.argv[2])); print(json.dumps(d))' "$1" "$2" >>"$jsonl"; }

ours_step() {  # model round
  local j
  j=$("$bin" bench --model "$1" --device cpu --batch-size "$batch" --steps "$steps" --warmup "$warmup" --json)
  echo "step $1 r$2 latentlab: $(echo "$j" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f ms (p10 %.3f, p90 %.3f), %s, denormals %s" % (d["median_step_ms"], d["p10_step_ms"], d["p90_step_ms"], d["instruction_set"], d["denormals"]))')"
  record "{\"what\":\"step\",\"side\":\"latentlab-cpu\",\"model\":\"$1\",\"batch\":$batch,\"round\":$2}" "$j"
}
torch_step() {  # model round side [--flush-denormal]
  local d="$scratch/$3-$1-$2"
  "$py" "$ref" --model "$1" --bench-only --threads "$torch_threads" --batch-size "$batch" \
    --bench-steps "$steps" --bench-warmup "$warmup" --data-dir data/mnist --out "$d" "${@:4}" >/dev/null
  local j
  j=$(tail -n 1 "$d/bench.jsonl")
  echo "step $1 r$2 $3: $(echo "$j" | python3 -c 'import json,sys; b=json.load(sys.stdin)["step_bench"]; print("%.3f ms (p10 %.3f, p90 %.3f)" % (b["median_ms"], b["p10_ms"], b["p90_ms"]))')"
  record "{\"what\":\"step\",\"side\":\"$3\",\"model\":\"$1\",\"batch\":$batch,\"round\":$2}" "$j"
}
epochs_of() { python3 -c 'import csv,sys; print(", ".join("%.2f" % float(r["seconds"]) for r in csv.DictReader(open(sys.argv[1]))))' "$1"; }
ours_train() {  # model round
  local t0=$SECONDS d="$scratch/ours-$1-$2"
  "$bin" train --model "$1" --device cpu --epochs "$epochs" --out "$d" >/dev/null 2>"$d.err"
  local wall=$((SECONDS - t0))
  echo "train $1 r$2 latentlab: wall $wall s; epochs $(epochs_of "$d/metrics.csv") s"
  record "{\"what\":\"train\",\"side\":\"latentlab-cpu\",\"model\":\"$1\",\"round\":$2,\"wall_s\":$wall}" \
    "$(python3 -c 'import csv,json,sys; rows=list(csv.DictReader(open(sys.argv[1]))); s=json.load(open(sys.argv[2])); print(json.dumps({"epoch_s":[float(r["seconds"]) for r in rows],"test_recon":s["test_recon"],"test_kl":s["test_kl"],"test_loss":s["test_loss"]}))' "$d/metrics.csv" "$d/summary.json")"
}
torch_train() {  # model round side [--flush-denormal]
  local t0=$SECONDS d="$scratch/$3-$1-$2"
  "$py" "$ref" --model "$1" --threads "$torch_threads" --epochs "$epochs" --bench-steps 0 --data-dir data/mnist \
    --out "$d" "${@:4}" >"$d.log" 2>&1
  local wall=$((SECONDS - t0))
  echo "train $1 r$2 $3: wall $wall s; epochs $(epochs_of "$d/metrics.csv") s"
  record "{\"what\":\"train\",\"side\":\"$3\",\"model\":\"$1\",\"round\":$2,\"wall_s\":$wall}" \
    "$(python3 -c 'import csv,json,sys; rows=list(csv.DictReader(open(sys.argv[1]))); f=rows[-1]; print(json.dumps({"epoch_s":[float(r["seconds"]) for r in rows],"test_recon":float(f["test_recon"]),"test_kl":float(f["test_kl"]),"test_loss":float(f["test_loss"])}))' "$d/metrics.csv")"
}

for r in $(seq "$rounds"); do
  for model in ae vae; do
    if [ $((r % 2)) -eq 1 ]; then
      ours_step "$model" "$r"; torch_step "$model" "$r" torch-default; torch_step "$model" "$r" torch-flush --flush-denormal
    else
      torch_step "$model" "$r" torch-flush --flush-denormal; torch_step "$model" "$r" torch-default; ours_step "$model" "$r"
    fi
  done
done
for r in $(seq "$train_rounds"); do
  for model in ae vae; do
    if [ $((r % 2)) -eq 1 ]; then
      ours_train "$model" "$r"; torch_train "$model" "$r" torch-default; torch_train "$model" "$r" torch-flush --flush-denormal
    else
      torch_train "$model" "$r" torch-flush --flush-denormal; torch_train "$model" "$r" torch-default; ours_train "$model" "$r"
    fi
  done
done
python3 bench/summary.py "$jsonl" "$out/vs_torch.json" "$out/vs_torch.md"
cat "$out/vs_torch.md"
