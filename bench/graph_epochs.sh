#!/usr/bin/env bash
# The GPU training loop as it trains (each block's full batches replayed from one captured
# step, `src/train/graph.rs`) against the same loop issuing every step anew (`--no-graph`):
# whole epochs of `latentlab train --device gpu`, side by side in one run, the order of the two
# sides alternating from round to round. Both are latentlab with the same binary, data, seed,
# batch and epochs; the only difference is the flag. An A/B of our own two paths, not a
# comparison with PyTorch (bench/gpu.sh makes that one on a GPU machine, with both paths).
#
#   bench/graph_epochs.sh
#   ROUNDS=5 MODELS="ae vae" HIDDEN=8,8 EPOCHS=2 TRAIN_LIMIT= BATCH=128 bench/graph_epochs.sh
#
# BASE_BIN=path adds a third side, `base`: that binary's replayed loop (say, a build from before a
# change to it), the same flags; SIDES="replayed base" leaves a side out. EXTRA="--binarize
# dynamic" gives every side more `train` flags.
#
# Epoch 1 pays for compiling the shaders (and, replaying, three captures); every later epoch
# is compared (median over rounds of each run's later epochs). Without a GPU this runs on
# lavapipe, Mesa's software Vulkan, where the shaders' arithmetic runs on the same two cores
# as the host's work: the saving it shows is the host's per-step work, not what a GPU would
# gain. Writes OUT/graph_epochs.{jsonl,md,log} (OUT default bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5} models=${MODELS:-"ae vae"} hidden=${HIDDEN:-8,8} epochs=${EPOCHS:-2}
batch=${BATCH:-128} out=${OUT:-bench/out}
limit=() extra=()
[ -n "${TRAIN_LIMIT:-}" ] && limit=(--train-limit "$TRAIN_LIMIT")
read -r -a extra <<<"${EXTRA:-}"
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
jsonl="$out/graph_epochs.jsonl"
: >"$jsonl"
exec > >(tee "$out/graph_epochs.log") 2>&1
cargo build --release --quiet
bin=target/release/latentlab
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "== hidden $hidden, batch $batch, $epochs epochs, ${TRAIN_LIMIT:-all} images, $rounds rounds${EXTRA:+, every side: $EXTRA}"

sides=${SIDES:-"replayed issued${BASE_BIN:+ base}"}
run() {  # model side round [flags...]
  local d="$scratch/$2-$1-$3" exe=$bin
  [ "$2" = base ] && exe=$BASE_BIN
  "$exe" train --model "$1" --device gpu --hidden "$hidden" --batch-size "$batch" \
    --epochs "$epochs" "${limit[@]}" --iwae-samples 1 --out "$d" "${extra[@]}" "${@:4}" >/dev/null 2>"$d.err" \
    || { echo "$2 $1 r$3 failed: $(tail -n 2 "$d.err")"; exit 1; }
  [ "$3" = 1 ] && echo "== $(tr '\r' '\n' <"$d.err" | grep -a -m1 '^training' | sed 's/, run directory.*//')"
  python3 - "$d/metrics.csv" "$1" "$2" "$3" "$jsonl" <<'EOF'
import csv, json, sys
path, model, side, rnd, jsonl = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
rec = {"model": model, "side": side, "round": int(rnd),
       "epoch_s": [float(r["seconds"]) for r in rows],
       "test_loss": float(rows[-1]["test_loss"])}
print(f"{model} {side} r{rnd}: epochs {', '.join('%.2f' % s for s in rec['epoch_s'])} s; test loss {rec['test_loss']:.4f}")
open(jsonl, "a").write(json.dumps(rec) + "\n")
EOF
}

side() {  # model side round
  case $2 in
    issued) run "$1" issued "$3" --no-graph ;;
    *) run "$1" "$2" "$3" ;;
  esac
}
for r in $(seq "$rounds"); do
  for model in $models; do
    # The sides in turn, each round starting one further along.
    read -r -a order <<<"$sides"
    k=${#order[@]}
    for i in $(seq 0 $((k - 1))); do
      side "$model" "${order[$(((i + r - 1) % k))]}" "$r"
    done
  done
done

python3 - "$jsonl" "$out/graph_epochs.md" <<'EOF'
import json, statistics, sys
from collections import defaultdict
recs = [json.loads(l) for l in open(sys.argv[1])]
later = defaultdict(list)   # (model, side) -> each run's median epoch time after the first
losses = defaultdict(set)
for r in recs:
    later[(r["model"], r["side"])].append(statistics.median(r["epoch_s"][1:] or r["epoch_s"]))
    losses[(r["model"], r["side"])].add(round(r["test_loss"], 4))
lines = ["| model | side | epoch s (median of rounds; min, max) | test loss |", "| --- | --- | --- | --- |"]
for (m, s), v in sorted(later.items()):
    lines.append(f"| {m} | {s} | {statistics.median(v):.2f} ({min(v):.2f}, {max(v):.2f}) | {', '.join(map(str, sorted(losses[(m, s)])))} |")
lines.append("")
for m in sorted({m for m, _ in later}):
    for other in ("issued", "base"):
        if (m, "replayed") in later and (m, other) in later:
            a, b = statistics.median(later[(m, "replayed")]), statistics.median(later[(m, other)])
            lines.append(f"{m}: replayed / {other} = {a / b:.2f}x per epoch")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
