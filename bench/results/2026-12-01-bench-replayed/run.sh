#!/bin/bash
export XDG_RUNTIME_DIR=/tmp/xdg
B=/tmp/bq/latentlab
cp /work/main/target/release/latentlab $B
cd /work/main
for r in 1 2 3 4 5; do
  for m in ae vae; do
    $B bench --model $m --device gpu --steps 100 --warmup 10 --json > /tmp/bq/$m-$r.json
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["replayed"]; print(sys.argv[1], "issued %.1f ms host %.2f | replayed %.1f ms host %.2f, %d captures, same %s %.2f" % (d["median_step_ms"], d["median_enqueue_ms"], r["median_step_ms"], r["median_enqueue_ms"], r["captures"], r["same_loss"], r["worst_loss_error"]))' /tmp/bq/$m-$r.json
  done
done
