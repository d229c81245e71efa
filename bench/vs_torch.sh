#!/usr/bin/env bash
# Side-by-side step benchmark: latentlab and the PyTorch reference, alternately, in one run,
# same batch and thread count. Prints each measurement and the ratio ours/PyTorch per model.
#
#   bench/vs_torch.sh [ROUNDS] [BATCH]        (defaults 3, 128)
#
# Needs the reference's Python (see ../shared/reference/README.md): set TORCH_PY to it
# (default /tmp/torchref/bin/python) and TORCH_REF to torch_ref.py (default
# ../shared/reference/torch_ref.py). Builds latentlab in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
batch=${2:-128}
threads=$(nproc)
py=${TORCH_PY:-/tmp/torchref/bin/python}
ref=${TORCH_REF:-../shared/reference/torch_ref.py}
out=$(mktemp -d)
cargo build --release --quiet
bin=target/release/latentlab
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads threads; $(date -u +%Y-%m-%dT%H:%MZ)"
for model in ae vae; do
  ours=(); theirs=()
  for r in $(seq "$rounds"); do
    o=$("$bin" bench --model "$model" --device cpu --batch-size "$batch" --steps 200 --warmup 20 --json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["median_step_ms"])')
    OMP_WAIT_POLICY=PASSIVE "$py" "$ref" --model "$model" --bench-only --threads "$threads" \
        --batch-size "$batch" --data-dir data/mnist --out "$out" >/dev/null
    t=$(tail -n 1 "$out/bench.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["step_bench"]["median_ms"])')
    echo "$model round $r: latentlab $o ms, pytorch $t ms"
    ours+=("$o"); theirs+=("$t")
  done
  python3 - "$model" "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
model, ours, theirs = sys.argv[1], list(map(float, sys.argv[2].split())), list(map(float, sys.argv[3].split()))
o, t = statistics.median(ours), statistics.median(theirs)
print(f"{model}: latentlab {o:.3f} ms/step, pytorch {t:.3f} ms/step, ratio {o / t:.2f}x (median of {len(ours)} alternating rounds)")
PY
done
