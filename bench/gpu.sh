#!/usr/bin/env bash
# The GPU benchmark in one call: latentlab `--device gpu` (wgpu) against the PyTorch reference
# on CUDA (eager and torch.compile), alternately, on the same card, in one command.
#
#   bench/gpu.sh prepare   here: build, and put what travels in .gpu/ (the stripped release
#                          binary, xz-compressed; torch_ref.py) and .gl/ (the Vulkan loader);
#                          with SPIRV=1 (the default) also the build with the `spirv` feature
#                          (CubeCL's own SPIR-V compiler instead of WGSL; ~20 min the first
#                          time), as .gpu/latentlab-spirv.xz. Both without the MNIST copy
#                          inside (data/mnist travels with the repository).
#   bench/gpu.sh run       there: every measurement below, then $OUT/gpu_bench.{json,md,log}
#
# With the device tool (carry [".gl", ".gpu"]; the command must start by unpacking the loader):
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash bench/gpu.sh run
# Everything takes well over one call's 10 minutes. Issue 18's two goals (a step at batch 128
# and a 10-epoch training against PyTorch-CUDA eager) in one call of ~9 minutes (timeout 560):
#   ... ldconfig; PARTS="steps train" BATCHES=128 ROUNDS=3 COMPILE=0 EPOCHS=10 NO_GRAPH=0
#   PARITY=0 DEADLINE_S=420 bash bench/gpu.sh run
# (SPIRV=0 leaves the SPIR-V build out: one program fewer in the steps and the training.)
#
# Tried here first on lavapipe, with the PyTorch side on the CPU and fewer steps:
#   TORCH_DEVICE=cpu ROUNDS=1 STEPS=10 WARMUP=2 BATCHES=128 EPOCHS=1 TRAIN_LIMIT=2048 COMPILE=0 bench/gpu.sh run
#
# What runs (`run`), each item alternating which program goes first from round to round:
# - one training step, AE and VAE, at each batch in BATCHES: `latentlab bench --device gpu`
#   (the WGSL build, and the SPIR-V build where it travelled; each step issued anew, and unless
#   REPLAY=0 also replayed from a captured step as `train` takes it) and `torch_ref.py --bench-only`
#   eager (and `--compile` if COMPILE=1): median of STEPS steps after WARMUP, ROUNDS rounds;
# - a whole training run of EPOCHS epochs of each model (TRAIN_ROUNDS rounds, after one short
#   untimed run of each program: the autotune results and kernels a user's second run has): latentlab on the
#   GPU (as it trains, with --no-graph: every step issued anew, and the SPIR-V build where it
#   travelled and its steps ran), PyTorch on CUDA, and latentlab on the CPU of the same machine (the parity check:
#   the same seed must reach the same test losses on both devices);
# - one training step of the convolutional AE and VAE (`bench --arch conv --device gpu`,
#   batch 128, ROUNDS rounds): latentlab only, the reference has no conv model.
# Knobs (environment): ROUNDS=5 TRAIN_ROUNDS=1 REPLAY=1 BATCHES="128 1024" STEPS=200 WARMUP=20 EPOCHS=3
# TRAIN_LIMIT (all images) COMPILE=1 TORCH_DEVICE=cuda TORCH_PY=python3 OUT=bench/out
# NO_GRAPH=1 (the --no-graph training run) PARITY=1 (the CPU's training run, round 1)
# TRAIN_WARMUP=1 (the untimed short runs before the training rounds) SPIRV=1 (the SPIR-V build
# too, where it travelled)
# PARTS="startup steps conv train" (any of them, run in that order) ROUND_START=1 (to continue an earlier call's rounds) DEADLINE_S (no new measurement starts after it, so
# that a call under a time limit still ends with its summary).
set -euo pipefail
cd "$(dirname "$0")/.."

# Decompresses an .xz file to an executable (Python's lzma where xz is missing).
unxz_to() {
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
  chmod +x "$2"
}

# Builds latentlab with `features` (and without the MNIST copy inside: data/mnist travels with
# the repository, and two copies more would not fit the 64 MiB) in target/gpu-NAME, seeded
# from target/release so that only what the features touch is rebuilt; then strips and
# compresses it to .gpu/FILE.xz.
travel_build() {  # NAME FILE [cargo feature arguments]
  local dir=target/gpu-$1 file=$2
  shift 2
  if [ ! -d "$dir/release" ]; then mkdir -p "$dir" && cp -a target/release "$dir/"; fi
  CARGO_TARGET_DIR=$dir cargo build --release --locked --no-default-features "$@"
  strip -o ".gpu/$file" "$dir/release/latentlab"
  xz -T0 -6 -f ".gpu/$file"
}

prepare() {
  # The default build, brought up to date: a travel build's folder starts as a copy of it.
  cargo build --release --locked
  mkdir -p .gpu .gl
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >>.git/info/exclude
  grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>.git/info/exclude
  travel_build wgsl latentlab
  if [ "${SPIRV:-1}" = 1 ]; then
    # The first time ~20 min: the feature changes Burn's build.
    travel_build spirv latentlab-spirv --features spirv
  else
    rm -f .gpu/latentlab-spirv.xz
  fi
  cp "${TORCH_REF:-../shared/reference/torch_ref.py}" .gpu/torch_ref.py
  if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    apt-get $o update -qq
    (cd .gl && apt-get $o download libvulkan1)
  fi
  du -ch .gpu/* .gl/* | tail -n 1
  # The device tool takes at most 64 MiB: the repository's tracked files and what is carried.
  local bytes
  bytes=$( (git ls-files -z | xargs -0 du -cb; du -cb .gpu/* .gl/*) | awk '$2 == "total" { s += $1 } END { print s }')
  echo "$((bytes >> 20)) MiB travel (tracked files included)"
  [ "$bytes" -le $((64 << 20)) ] || echo "warning: over the device tool's 64 MiB"

  echo "ready: carry .gl and .gpu; run: for f in .gl/*.deb; do dpkg -x \$f /; done; ldconfig; bash bench/gpu.sh run"
}

run() {
  local rounds=${ROUNDS:-5} train_rounds=${TRAIN_ROUNDS:-1} batches=${BATCHES:-"128 1024"}
  local steps=${STEPS:-200} warmup=${WARMUP:-20} epochs=${EPOCHS:-3} compile=${COMPILE:-1}
  local tdev=${TORCH_DEVICE:-cuda} py=${TORCH_PY:-python3} out=${OUT:-bench/out}
  local limit=()
  [ -n "${TRAIN_LIMIT:-}" ] && limit=(--train-limit "$TRAIN_LIMIT")
  local tlimit=()
  [ -n "${TRAIN_LIMIT:-}" ] && tlimit=(--limit-train "$TRAIN_LIMIT")
  mkdir -p "$out"
  local bin=target/release/latentlab
  if [ -f .gpu/latentlab.xz ]; then
    unxz_to .gpu/latentlab.xz /tmp/latentlab && bin=/tmp/latentlab
  fi
  # The SPIR-V build, where it travelled (or SPIRV_BIN names one): timed beside the WGSL one.
  local spirv_bin=${SPIRV_BIN:-}
  if [ -z "$spirv_bin" ] && [ "${SPIRV:-1}" = 1 ] && [ -f .gpu/latentlab-spirv.xz ]; then
    unxz_to .gpu/latentlab-spirv.xz /tmp/latentlab-spirv && spirv_bin=/tmp/latentlab-spirv
  fi
  local ref=.gpu/torch_ref.py
  [ -f "$ref" ] || ref=${TORCH_REF:-../shared/reference/torch_ref.py}
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  chmod 700 "$XDG_RUNTIME_DIR"
  local jsonl="$out/gpu_bench.jsonl" log="$out/gpu_bench.log" scratch
  scratch=$(mktemp -d)
  : >"$jsonl"
  exec > >(tee -a "$log") 2>&1
  local threads
  threads=$(nproc)
  # PyTorch's own default thread count (torch_ref always calls set_num_threads; told this, it
  # leaves the default as it is).
  local torch_threads
  torch_threads=$("$py" -c 'import torch; print(torch.get_num_threads())')
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -m), $threads cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$bin" devices || true
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))' || true

  # Wall clock in seconds, to the millisecond (a whole run's wall time is compared).
  now() { date +%s.%N; }
  since() { python3 -c 'import sys, time; print("%.3f" % (time.time() - float(sys.argv[1])))' "$1"; }
  # One record per measurement: {"what": ..., "side": ..., ...} on one line.
  record() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(json.loads(sys.argv[2])); print(json.dumps(d))' "$1" "$2" >>"$jsonl"; }

  # Each step's bench also times the step as `train` takes it on a GPU (replayed from a
  # captured step, the weights updated in place), recorded as side SIDE-replayed; if that
  # fails the step is measured again with --no-graph, and where that works (the replays
  # failed, not the build) replays are not tried again.
  local replay=${REPLAY:-1}
  ours_step() {  # model batch round [arch: mlp (default) or conv] [binary] [side]
    local t0=$SECONDS j arch=${4:-mlp} side=${6:-latentlab-wgpu} b=${5:-$bin} graph=()
    [ "$arch" = conv ] && side=latentlab-wgpu-conv
    [ "$replay" = 1 ] || graph=(--no-graph)
    j=$("$b" bench --model "$1" --arch "$arch" --device gpu --batch-size "$2" --steps "$steps" --warmup "$warmup" --json "${graph[@]}") || {
      if [ ${#graph[@]} -eq 0 ]; then
        graph=(--no-graph)
        j=$("$b" bench --model "$1" --arch "$arch" --device gpu --batch-size "$2" --steps "$steps" --warmup "$warmup" --json "${graph[@]}") || { echo "$side bench $1 $2 $arch failed"; return 1; }
        echo "$side bench $1 $2 $arch failed with replays, not with --no-graph: replays not tried again"; replay=0
      else echo "$side bench $1 $2 $arch failed"; return 1; fi
    }
    echo "step $1 $arch b$2 r$3 $side: $(echo "$j" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f ms (p10 %.3f, p90 %.3f; host %.3f, %d launches)" % (d["median_step_ms"], d["p10_step_ms"], d["p90_step_ms"], d.get("median_enqueue_ms", 0), d.get("kernel_launches_per_step", 0)))') [$((SECONDS - t0)) s]"
    record "{\"what\":\"step\",\"side\":\"$side\",\"model\":\"$1\",\"batch\":$2,\"round\":$3}" "$j"
    local p
    p=$(echo "$j" | python3 -c 'import json,sys; d=json.load(sys.stdin); p=d.get("replayed"); p and p.update({k: d[k] for k in ("adapter", "backend", "cpu")}); print(json.dumps(p) if p else d.get("not_replayed") or "")')
    case "$p" in
      "{"*)
        echo "step $1 $arch b$2 r$3 $side-replayed: $(echo "$p" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f ms (p10 %.3f, p90 %.3f; host %.3f; %d captures of %.1f ms; same loss as an ordinary forward pass: %s, worst error %.2f roundings)" % (d["median_step_ms"], d["p10_step_ms"], d["p90_step_ms"], d["median_enqueue_ms"], d["captures"], d["median_capture_ms"], d["same_loss"], d["worst_loss_error"]))')"
        record "{\"what\":\"step\",\"side\":\"$side-replayed\",\"model\":\"$1\",\"batch\":$2,\"round\":$3}" "$p" ;;
      "") ;;
      *) echo "step $1 $arch b$2 r$3 $side: not replayed: $p" ;;
    esac
  }
  torch_step() {  # model batch round side [--compile]
    local t0=$SECONDS d="$scratch/$4-$1-$2-$3"
    "$py" "$ref" --model "$1" --bench-only --device "$tdev" --threads "$torch_threads" --batch-size "$2" \
      --bench-steps "$steps" --bench-warmup "$warmup" --data-dir data/mnist --out "$d" "${@:5}" >/dev/null \
      || { echo "torch $4 $1 $2 failed"; return 0; }
    local j
    j=$(tail -n 1 "$d/bench.jsonl")
    echo "step $1 b$2 r$3 $4: $(echo "$j" | python3 -c 'import json,sys; b=json.load(sys.stdin)["step_bench"]; print("%.3f ms (p10 %.3f, p90 %.3f)" % (b["median_ms"], b["p10_ms"], b["p90_ms"]))') [$((SECONDS - t0)) s]"
    record "{\"what\":\"step\",\"side\":\"$4\",\"model\":\"$1\",\"batch\":$2,\"round\":$3}" "$j"
  }
  ours_train() {  # model device round [side extra-arguments...]
    local side=${4:-latentlab-$2}
    local t0 d="$scratch/ours-$side-$1-$3"
    t0=$(now)
    "${TRAIN_BIN:-$bin}" train --model "$1" --device "$2" --epochs "$epochs" "${limit[@]}" --out "$d" "${@:5}" >/dev/null 2>"$d.err" \
      || { echo "latentlab train $1 $side failed: $(tail -n 2 "$d.err")"; return 1; }
    local wall
    wall=$(since "$t0")
    # Where the process's time went: latentlab's closing `time:` line (after the progress
    # bar's carriage returns), as {phase: seconds}.
    local timeline phases
    timeline=$(tr '\r' '\n' <"$d.err" | grep -a '^time: ' | tail -n 1 || true)
    phases=$(python3 -c 'import json,re,sys; body=sys.argv[1][6:].split(" (total")[0]; print(json.dumps({m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"([^,]+?) ([0-9.]+) s(?:,|$)", body)}))' "$timeline")
    echo "train $1 $side r$3: wall ${wall} s; epochs $(python3 -c 'import csv,sys; print(", ".join("%.2f" % float(r["seconds"]) for r in csv.DictReader(open(sys.argv[1]))))' "$d/metrics.csv") s; $timeline"
    record "{\"what\":\"train\",\"side\":\"$side\",\"model\":\"$1\",\"round\":$3,\"wall_s\":$wall,\"phases_s\":$phases}" \
      "$(python3 -c 'import csv,json,sys; rows=list(csv.DictReader(open(sys.argv[1]))); s=json.load(open(sys.argv[2])); print(json.dumps({"epoch_s":[float(r["seconds"]) for r in rows],"test_recon":s["test_recon"],"test_kl":s["test_kl"],"test_loss":s["test_loss"]}))' "$d/metrics.csv" "$d/summary.json")"
  }
  torch_train() {  # model round
    local t0 d="$scratch/torch-$1-$2"
    t0=$(now)
    "$py" "$ref" --model "$1" --device "$tdev" --threads "$torch_threads" --epochs "$epochs" "${tlimit[@]}" --bench-steps 0 \
      --data-dir data/mnist --out "$d" >"$d.log" 2>&1 || { echo "torch train $1 failed: $(tail -n 2 "$d.log")"; return 0; }
    local wall
    wall=$(since "$t0")
    echo "train $1 torch-$tdev r$2: wall ${wall} s; epochs $(python3 -c 'import csv,sys; print(", ".join("%.2f" % float(r["seconds"]) for r in csv.DictReader(open(sys.argv[1]))))' "$d/metrics.csv") s"
    record "{\"what\":\"train\",\"side\":\"torch-$tdev\",\"model\":\"$1\",\"round\":$2,\"wall_s\":$wall}" \
      "$(python3 -c 'import csv,json,sys; rows=list(csv.DictReader(open(sys.argv[1]))); f=rows[-1]; print(json.dumps({"epoch_s":[float(r["seconds"]) for r in rows],"test_recon":float(f["test_recon"]),"test_kl":float(f["test_kl"]),"test_loss":float(f["test_loss"])}))' "$d/metrics.csv")"
  }

  # Start to first step: a fresh machine has no autotune results and no compiled kernels
  # (cold); the second start finds them in target/environment (warm).
  local parts=${PARTS:-"startup steps conv train"} deadline=$((SECONDS + ${DEADLINE_S:-100000}))
  late() { [ "$SECONDS" -ge "$deadline" ] && { echo "deadline reached: skipping $*"; return 0; }; return 1; }
  # Each build keeps its compiled kernels and autotune results in its own files, so each
  # starts cold once.
  startup() {  # binary side
    local state t0 j secs
    for state in cold warm; do
      t0=$(now)
      j=$("$1" bench --model vae --device gpu --batch-size 128 --steps 1 --warmup 0 --json --no-graph) \
        || { echo "start to first step ($2, $state): failed"; return 1; }
      secs=$(since "$t0")
      echo "start to first step ($2, $state): $secs s"
      record "{\"what\":\"startup\",\"side\":\"$2\",\"state\":\"$state\",\"wall_s\":$secs}" "$j"
    done
  }
  part_startup() {
    startup "$bin" latentlab-wgpu || true
    if [ -n "$spirv_bin" ] && ! startup "$spirv_bin" latentlab-wgpu-spirv; then
      echo "the SPIR-V build failed on this machine: not tried again"
      spirv_bin=""
    fi
  }
  # The SPIR-V build's step, where there is one: right after the WGSL build's, in the same
  # alternation.
  ours_steps() {  # model batch round
    ours_step "$1" "$2" "$3" || true
    if [ -n "$spirv_bin" ] && ! ours_step "$1" "$2" "$3" mlp "$spirv_bin" latentlab-wgpu-spirv; then
      echo "the SPIR-V build failed on this machine: not tried again"
      spirv_bin=""
    fi
  }

  part_steps() { for r in $(seq "${ROUND_START:-1}" "$rounds"); do
    for model in ae vae; do
      for b in $batches; do
        late "step round $r $model $b" && continue
        if [ $((r % 2)) -eq 1 ]; then
          ours_steps "$model" "$b" "$r"
          torch_step "$model" "$b" "$r" "torch-$tdev-eager"
          [ "$compile" = 1 ] && torch_step "$model" "$b" "$r" "torch-$tdev-compile" --compile
        else
          [ "$compile" = 1 ] && torch_step "$model" "$b" "$r" "torch-$tdev-compile" --compile
          torch_step "$model" "$b" "$r" "torch-$tdev-eager"
          ours_steps "$model" "$b" "$r"
        fi
      done
    done
  done; return 0; }
  # The convolutional models (--arch conv): latentlab only (the reference has no conv model),
  # batch 128, every round, for the record beside the MLP's figures.
  part_conv() { for r in $(seq "$rounds"); do
    for model in ae vae; do
      late "conv round $r $model" && continue
      ours_step "$model" 128 "$r" conv || true
    done
  done; return 0; }
  part_train() {
    # First, one short untimed run of each program and model (1 epoch of 1,280 images; the
    # evaluation, encoding and IWAE shapes are the full runs'): a fresh machine has no autotune
    # results or compiled kernels for them, which a user's second run has; PyTorch gets the
    # same (its CUDA context, cuBLAS, the file caches). TRAIN_WARMUP=0 leaves it out.
    local model exe t0
    t0=$(now)
    [ "${TRAIN_WARMUP:-1}" = 1 ] && for model in ae vae; do
      late "warm-up runs" && break
      for exe in "$bin" ${spirv_bin:+"$spirv_bin"}; do
        "$exe" train --model "$model" --device gpu --epochs 1 --train-limit 1280 \
          --out "$scratch/warm-$model-$(basename "$exe")" >/dev/null 2>&1 && continue
        echo "warm-up run of $exe ($model) failed"
        if [ "$exe" = "$spirv_bin" ]; then
          echo "the SPIR-V build failed on this machine: not tried again"
          spirv_bin=""
        fi
      done
      "$py" "$ref" --model "$model" --device "$tdev" --threads "$torch_threads" --epochs 1 --limit-train 1280 \
        --bench-steps 0 --data-dir data/mnist --out "$scratch/warm-torch-$model" >/dev/null 2>&1 \
        || echo "warm-up run of the PyTorch reference ($model) failed"
    done
    [ "${TRAIN_WARMUP:-1}" = 1 ] && echo "untimed warm-up runs before the training rounds: $(since "$t0") s"
    for r in $(seq "$train_rounds"); do
    for model in ae vae; do
      late "train round $r $model" && continue
      # The GPU loop as it trains (full batches replayed from a captured step), with every
      # step issued anew (--no-graph), and the SPIR-V build where it travelled and worked (it
      # keeps its compiled kernels on disk, where the WGSL build compiles every kernel on every
      # run: the run's start-up and its first test losses, encoding and IWAE say what that
      # costs), in the same alternation as PyTorch.
      spirv_train() {
        [ -z "$spirv_bin" ] && return 0
        TRAIN_BIN=$spirv_bin ours_train "$model" gpu "$r" latentlab-spirv-gpu && return 0
        echo "the SPIR-V build failed on this machine: not tried again"
        spirv_bin=""
      }
      issued_train() { [ "${NO_GRAPH:-1}" = 1 ] && { ours_train "$model" gpu "$r" latentlab-gpu-no-graph --no-graph || true; }; return 0; }
      if [ $((r % 2)) -eq 1 ]; then
        ours_train "$model" gpu "$r" || true; issued_train; spirv_train; torch_train "$model" "$r"
      else
        torch_train "$model" "$r"; spirv_train; issued_train; ours_train "$model" gpu "$r" || true
      fi
      [ "$r" = 1 ] && [ "${PARITY:-1}" = 1 ] && { ours_train "$model" cpu "$r" || true; }
    done
  done; return 0; }
  # The parts in the order PARTS names them (under a deadline, the first ones are sure to run).
  for part in $parts; do
    case $part in
      startup | steps | conv | train) "part_$part" || echo "part $part stopped early" ;;
      *) echo "unknown part '$part' in PARTS (startup, steps, conv, train)"; exit 2 ;;
    esac
  done
  python3 bench/summary.py "$jsonl" "$out/gpu_bench.json" "$out/gpu_bench.md"
  cat "$out/gpu_bench.md"
  rm -rf "$scratch"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bench/gpu.sh prepare|run" >&2; exit 2 ;;
esac
