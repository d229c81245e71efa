#!/usr/bin/env bash
# Where a GPU training step's *host* time goes, thread by thread (needs perf and no GPU).
#
#   cargo build --profile profiling     # the release build with its symbol table (once)
#   bash bench/host_threads.sh          # prints CPU microseconds per step per thread
#
# On a GPU device, Burn 0.22 runs a step on three host threads in a pipeline: the caller
# (`latentlab`: autodiff, Burn's tensor front end), CubeCL's upstream runner (`DSU-…`: Burn's
# fusion, which groups operations into kernels and plans their launches) and its downstream
# runner (`DSD-…`: CubeCL's wgpu server, which binds buffers, encodes and submits the launches,
# and here also runs lavapipe's shaders). A step can go no faster than its busiest thread, and
# a training loop that reads the loss back every 50 steps runs at that thread's pace.
#
# Method: `bench --device gpu` with tiny layers (HIDDEN=8,8, BATCH=8: the same operations and
# launches as the real model, next to no arithmetic) runs twice, with STEPS_A and STEPS_B timed
# steps, under `perf record -e cpu-clock`; the difference of the two runs' samples, divided by
# the difference of their step counts, is the cost of one step with start-up, autotune and
# warm-up cancelled out. Samples are sorted by thread and by what they are:
#   shader  lavapipe's JIT-compiled kernels (what a GPU would run instead)
#   driver  lavapipe itself (a GPU has its own driver, with its own cost)
#   wait    CubeCL's hand-over between threads (its channel spins, yields, then parks) and
#           the kernel's scheduling: time a thread holds a core without doing the step's work
#   work    everything else: Burn, CubeCL, wgpu, the allocator
# `work` is what a faster GPU cannot remove. On a 2-core machine the three threads and
# lavapipe compete for the cores, so `wait` is large there and says little; `work` is the figure.
#
# Knobs: MODEL="ae vae" HIDDEN=8,8 BATCH=8 STEPS_A=200 STEPS_B=1200 ROUNDS=3
#        BIN=target/profiling/latentlab OUT=bench/out (host_threads.{txt,json} go there)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/profiling/latentlab}
MODELS=${MODEL:-"ae vae"}
HIDDEN=${HIDDEN:-8,8}
BATCH=${BATCH:-8}
STEPS_A=${STEPS_A:-200}
STEPS_B=${STEPS_B:-1200}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-bench/out}

command -v perf >/dev/null || { echo "host_threads: needs perf (apt install linux-perf)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "host_threads: no $BIN; run: cargo build --profile profiling" >&2; exit 2; }
if command -v readelf >/dev/null && [ "$(readelf -S "$BIN" | grep -c '\.symtab')" -eq 0 ]; then
  echo "host_threads: $BIN has no symbol table (a stripped release build?); use the profiling build" >&2
  exit 2
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One bench run under perf; leaves "<comm>\t<dso>\t<symbol>" per sample in $work/$1.samples.
record() {
  local name=$1 model=$2 steps=$3
  perf record -q -e cpu-clock -F 4000 -o "$work/$name.data" -- \
    "$BIN" bench --model "$model" --device gpu --hidden "$HIDDEN" --batch-size "$BATCH" \
    --steps "$steps" --warmup 20 --json --no-graph >"$work/$name.json" 2>/dev/null
  perf script -i "$work/$name.data" -F comm,ip,sym,dso 2>/dev/null |
    awk '{ comm=$1; dso=$NF; $1=""; $2=""; $NF=""; gsub(/^ +| +$/, ""); print comm "\t" dso "\t" $0 }' \
      >"$work/$name.samples"
  rm -f "$work/$name.data"
}

echo "host_threads: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores;" \
  "$BIN; hidden $HIDDEN, batch $BATCH; steps $STEPS_A vs $STEPS_B; $ROUNDS rounds"
# Warm the autotune and kernel caches first, so that neither measured run compiles.
for model in $MODELS; do record warm "$model" 5; done

for round in $(seq 1 "$ROUNDS"); do
  for model in $MODELS; do
    # Alternate which run goes first.
    if [ $((round % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
    for which in $order; do
      steps=$STEPS_A; [ "$which" = b ] && steps=$STEPS_B
      record "$model-$round-$which" "$model" "$steps"
    done
  done
done

python3 - "$work" "$OUT" "$MODELS" "$ROUNDS" "$STEPS_A" "$STEPS_B" <<'EOF'
import collections, json, re, statistics, sys
from pathlib import Path

work, out, models, rounds, steps_a, steps_b = sys.argv[1:]
work, out, rounds = Path(work), Path(out), int(rounds)
steps_a, steps_b = int(steps_a), int(steps_b)
HZ = 4000
# CubeCL's channel (its spin, yield and park loops are inlined into these) and the kernel's
# scheduling; see the script's head.
WAIT = re.compile(r"submit_inner|submit_blocking|Server::start|State::enqueued|finish_task_switch"
                  r"|_raw_spin_unlock_irqrestore|sched_yield|__schedule|futex|park_timeout|thread::park")

def thread(comm):
    if comm.startswith("DSU"): return "fusion (DSU)"
    if comm.startswith("DSD"): return "device (DSD)"
    if comm == "latentlab": return "caller"
    return "other"

def kind(dso, sym):
    if re.search(r"perf-\d+\.map", dso): return "shader"
    if "libvulkan_lvp" in dso or "libLLVM" in dso: return "driver"
    if WAIT.search(sym): return "wait"
    return "work"

def counts(name):
    c = collections.Counter()
    for line in open(work / f"{name}.samples"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3: continue
        comm, dso, sym = parts
        c[(thread(comm), kind(dso, sym))] += 1
    return c

result = {}
lines = []
for model in models.split():
    per_round = collections.defaultdict(list)
    step_ms = []
    for r in range(1, rounds + 1):
        a, b = counts(f"{model}-{r}-a"), counts(f"{model}-{r}-b")
        for key in set(a) | set(b):
            per_round[key].append((b[key] - a[key]) / HZ / (steps_b - steps_a) * 1e6)
        step_ms.append(json.loads((work / f"{model}-{r}-b.json").read_text())["median_step_ms"])
    us = {f"{t} {k}": round(statistics.median(v), 1) for (t, k), v in sorted(per_round.items())}
    result[model] = {"median_step_ms": statistics.median(step_ms), "us_per_step": us}
    lines.append(f"\n{model.upper()}: median step {statistics.median(step_ms):.2f} ms "
                 f"(bench, {steps_b} steps); CPU microseconds per step, median of {rounds} rounds:")
    lines.append(f"  {'thread':<14} {'work':>8} {'wait':>8} {'driver':>8} {'shader':>8}")
    for t in ("caller", "fusion (DSU)", "device (DSD)", "other"):
        row = [us.get(f"{t} {k}", 0.0) for k in ("work", "wait", "driver", "shader")]
        if any(abs(x) >= 0.05 for x in row):
            lines.append(f"  {t:<14} " + " ".join(f"{int(round(x)):>8d}" for x in row))
text = "\n".join(lines)
print(text)
(out / "host_threads.txt").write_text(text.lstrip() + "\n")
(out / "host_threads.json").write_text(json.dumps(result, indent=1) + "\n")
EOF
echo "host_threads: wrote $OUT/host_threads.txt and .json"
