#!/usr/bin/env python3
"""Summarise the records of bench/gpu.sh and bench/vs_torch.sh: one JSON and one Markdown table.

    summary.py RECORDS.jsonl OUT.json OUT.md

Steps: per model, batch and side, the median over rounds of each round's median step, and
latentlab's ratio to each PyTorch side (below 1: latentlab is faster). Training: per model
and side, the seconds of each epoch's training loop (median over rounds), their sum, the
process's wall time and where it went, and the test losses; the parity of latentlab's GPU and CPU runs.
"""
import json
import statistics
import sys
from collections import defaultdict


def ours_mlp(side):
    return side.startswith("latentlab") and "-conv" not in side


def main(src, out_json, out_md):
    records = [json.loads(line) for line in open(src) if line.strip()]
    steps = defaultdict(list)
    hosts = defaultdict(list)
    trains = defaultdict(list)
    for r in records:
        if r["what"] == "step":
            ms = r["median_step_ms"] if "median_step_ms" in r else r["step_bench"]["median_ms"]
            steps[(r["model"], r["batch"], r["side"])].append(ms)
            if "median_enqueue_ms" in r:
                hosts[(r["model"], r["batch"], r["side"])].append(
                    (ms, r["median_enqueue_ms"], r.get("kernel_launches_per_step")))
        elif r["what"] == "train":
            trains[(r["model"], r["side"])].append(r)

    step_rows = []
    for model in ("ae", "vae"):
        for batch in sorted({k[1] for k in steps if k[0] == model}):
            sides = {s: statistics.median(v) for (m, b, s), v in steps.items() if m == model and b == batch}
            row = {"model": model, "batch": batch, "median_ms": sides,
                   "rounds": {s: len(v) for (m, b, s), v in steps.items() if m == model and b == batch}}
            # Each latentlab build of the same model (WGSL, SPIR-V; not the conv model) against
            # each PyTorch side.
            row["ratios"] = {f"{o} / {t}": sides[o] / sides[t]
                             for o in sorted(sides) if ours_mlp(o)
                             for t in sorted(sides) if not t.startswith("latentlab") and sides[t] > 0}
            step_rows.append(row)

    train_rows = []
    for (model, side), rs in sorted(trains.items()):
        epochs = len(rs[0]["epoch_s"])
        per_epoch = [statistics.median(r["epoch_s"][e] for r in rs) for e in range(epochs)]
        train_rows.append({
            "model": model, "side": side, "rounds": len(rs), "epoch_s": per_epoch,
            "train_s": sum(per_epoch), "wall_s": statistics.median(r["wall_s"] for r in rs),
            "test_recon": rs[0]["test_recon"], "test_kl": rs[0]["test_kl"], "test_loss": rs[0]["test_loss"],
            # latentlab's own account of its wall time (its `time:` line), median over rounds;
            # PyTorch's: its training loops only.
            "phases_s": {p: statistics.median(r["phases_s"].get(p, 0.0) for r in rs)
                         for p in dict.fromkeys(p for r in rs for p in r.get("phases_s", {}))}
                        or {"training": sum(per_epoch)},
        })
    parity = []
    for model in ("ae", "vae"):
        by = {t["side"]: t for t in train_rows if t["model"] == model}
        if "latentlab-gpu" in by and "latentlab-cpu" in by:
            g, c = by["latentlab-gpu"], by["latentlab-cpu"]
            parity.append({"model": model, "gpu_test_loss": g["test_loss"], "cpu_test_loss": c["test_loss"],
                           "relative_difference": abs(g["test_loss"] - c["test_loss"]) / abs(c["test_loss"])})

    # Where a latentlab step waits: the host's own work (until `step` returned) against the
    # whole step. Near 1, the host is the bottleneck, and fewer GPU launches will not help.
    host_rows = [{"model": m, "batch": b, "side": s, "step_ms": statistics.median(x[0] for x in v),
                  "host_ms": statistics.median(x[1] for x in v),
                  # A graph's replay issues its launches past CubeCL's launch observer: not counted.
                  "launches": statistics.median(x[2] for x in v) if all(x[2] is not None for x in v) else None}
                 for (m, b, s), v in sorted(hosts.items())]

    summary = {"steps": step_rows, "host": host_rows, "train": train_rows, "parity": parity, "records": records}
    with open(out_json, "w") as fh:
        json.dump(summary, fh, indent=1)

    first = next((r for r in records if "adapter" in r), {})
    backends = sorted({r["backend"] for r in records if "backend" in r})
    lines = [f"Device: {first.get('adapter', '?')} ({', '.join(backends) or '?'}); CPU {first.get('cpu', '?')}, "
             f"instruction set {first.get('instruction_set', '?')}, latentlab's denormals {first.get('denormals', '?')}", ""]
    if step_rows:
        sides = sorted({s for r in step_rows for s in r["median_ms"]})
        pairs = sorted({p for r in step_rows for p in r["ratios"]})
        lines += ["One training step, median over rounds of each round's median (ms); ratio = latentlab / PyTorch.", "",
                  "| model | batch | " + " | ".join(sides + pairs) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in sides + pairs) + " |"]
        for r in step_rows:
            cells = [f"{r['median_ms'][s]:.3f}" if s in r["median_ms"] else "-" for s in sides]
            ratios = [f"{r['ratios'][p]:.2f}x" if p in r["ratios"] else "-" for p in pairs]
            lines.append(f"| {r['model']} | {r['batch']} | " + " | ".join(cells + ratios) + " |")
        lines.append("")
    if host_rows:
        lines += ["latentlab's step from the inside: the host's own work (until the step was handed on, "
                  "before the loss is read back) and the kernel launches, medians over rounds.", "",
                  "| model | batch | side | step ms | host ms | host share | launches |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for h in host_rows:
            lines.append(f"| {h['model']} | {h['batch']} | {h['side']} | {h['step_ms']:.3f} | {h['host_ms']:.3f} | "
                         f"{h['host_ms'] / h['step_ms']:.0%} | " + ("-" if h["launches"] is None else f"{h['launches']:.0f}") + " |")
        lines.append("")
    if train_rows:
        lines += ["Whole training runs: seconds of each epoch's training loop, their sum, process wall time, test losses.", "",
                  "| model | side | epochs (s) | train s | wall s | test recon | test KL | test loss |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for t in train_rows:
            lines.append(f"| {t['model']} | {t['side']} | {', '.join(f'{e:.2f}' for e in t['epoch_s'])} | {t['train_s']:.2f} | "
                         f"{t['wall_s']:.1f} | {t['test_recon']:.3f} | {t['test_kl']:.3f} | {t['test_loss']:.3f} |")
        lines.append("")
    if train_rows:
        # Every phase any run named, in the order they ran; the rest of the wall time is outside
        # them (process start, loading the data, exit; for PyTorch everything but the loops).
        names = list(dict.fromkeys(p for t in train_rows for p in t["phases_s"]))
        lines += ["Where each whole run's wall time went (s, medians over rounds): latentlab's phases as its "
                  "`time:` line gives them; for PyTorch only its training loops are timed apart.", "",
                  "| model | side | wall s | " + " | ".join(names) + " | outside these |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
        for t in train_rows:
            ph = t["phases_s"]
            cells = [f"{ph[p]:.2f}" if p in ph else "-" for p in names]
            lines.append(f"| {t['model']} | {t['side']} | {t['wall_s']:.2f} | " + " | ".join(cells)
                         + f" | {t['wall_s'] - sum(ph.values()):.2f} |")
        lines.append("")
    for model in ("ae", "vae"):
        by = {t["side"]: t for t in train_rows if t["model"] == model}
        for o in sorted(s for s in by if s.startswith("latentlab")):
            for t in sorted(s for s in by if not s.startswith("latentlab")):
                lines.append(f"Training {model}: {o} / {t} = {by[o]['train_s'] / by[t]['train_s']:.2f}x (training loops), "
                             f"{by[o]['wall_s'] / by[t]['wall_s']:.2f}x (whole processes)")
    for r in records:
        if r["what"] == "startup":
            lines.append(f"Start to first step, {r['side']}, {r['state']}: {r['wall_s']:.1f} s (one VAE step at batch 128, process start included)")
    for p in parity:
        lines.append(f"Parity {p['model']}: latentlab GPU test loss {p['gpu_test_loss']:.3f}, CPU {p['cpu_test_loss']:.3f}, "
                     f"relative difference {100 * p['relative_difference']:.3f} %")
    with open(out_md, "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
