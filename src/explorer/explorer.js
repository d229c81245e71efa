"use strict";
// The latentlab explorer: scatter of the test codes, and the model's decoder run here, on
// every mouse move. Everything comes from the JSON block above; nothing is fetched.
(function () {
  const DATA = JSON.parse(document.getElementById("latentlab-data").textContent);
  // matplotlib's tab10, as in latentlab's figures.
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const PLOT = 520;
  const MARGIN = { left: 58, right: 14, top: 12, bottom: 46 };
  const DECODED = 224;
  const HOVERED = 112;
  const HOVER_RADIUS = 6;

  function bytes(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  // float32 little-endian, read through a DataView so the host's byte order does not matter.
  function floats(b64) {
    const b = bytes(b64);
    const view = new DataView(b.buffer);
    const out = new Float32Array(b.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }

  // The decoder: x W + b per dense layer (W row-major [inputs, outputs], as Burn's Linear
  // holds it), then for --arch conv the transposed convolutions, relu between layers, sigmoid
  // at the end. Sums run in double precision.
  function makeDecoder(layers, deconvs) {
    const ls = layers.map((l) => ({
      n: l.inputs, m: l.outputs, w: floats(l.weight), b: floats(l.bias),
    }));
    const cs = (deconvs || []).map((c) => ({
      cin: c.inputs, cout: c.outputs, w: floats(c.weight), b: floats(c.bias),
    }));
    const steps = ls.length + cs.length;
    const finish = (y, k) => {
      for (let j = 0; j < y.length; j++) {
        y[j] = k === steps - 1 ? 1 / (1 + Math.exp(-y[j])) : Math.max(0, y[j]);
      }
    };
    return function decode(z1, z2) {
      let x = Float64Array.of(z1, z2);
      for (let k = 0; k < ls.length; k++) {
        const { n, m, w, b } = ls[k];
        const y = new Float64Array(m);
        for (let j = 0; j < m; j++) y[j] = b[j];
        for (let i = 0; i < n; i++) {
          const xi = x[i];
          if (xi === 0) continue;
          const row = i * m;
          for (let j = 0; j < m; j++) y[j] += xi * w[row + j];
        }
        finish(y, k);
        x = y;
      }
      // Each transposed convolution (3x3, stride 2, padding 1, output padding 1; weight
      // [in, out, 3, 3]) scatters every input pixel into the doubled side.
      for (let k = 0; k < cs.length; k++) {
        const { cin, cout, w, b } = cs[k];
        const side = Math.round(Math.sqrt(x.length / cin));
        const out = 2 * side;
        const y = new Float64Array(cout * out * out);
        for (let o = 0; o < cout; o++) y.fill(b[o], o * out * out, (o + 1) * out * out);
        for (let i = 0; i < cin; i++) {
          for (let r = 0; r < side; r++) {
            for (let c = 0; c < side; c++) {
              const v = x[(i * side + r) * side + c];
              if (v === 0) continue;
              for (let o = 0; o < cout; o++) {
                const wk = (i * cout + o) * 9;
                for (let ky = 0; ky < 3; ky++) {
                  const oy = 2 * r + ky - 1;
                  if (oy < 0 || oy >= out) continue;
                  for (let kx = 0; kx < 3; kx++) {
                    const ox = 2 * c + kx - 1;
                    if (ox < 0 || ox >= out) continue;
                    y[(o * out + oy) * out + ox] += v * w[wk + ky * 3 + kx];
                  }
                }
              }
            }
          }
        }
        finish(y, ls.length + k);
        x = y;
      }
      return x;
    };
  }

  // Ticks at 1, 2 or 5 times a power of ten, about `count` of them.
  function ticks(lo, hi, count) {
    const raw = (hi - lo) / count;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((f) => f * p).find((s) => s >= raw) || 10 * p;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) {
      out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    }
    return { values: out, digits: Math.max(0, -Math.floor(Math.log10(step))) };
  }

  function hidpiCanvas(cls, w, h) {
    const c = document.createElement("canvas");
    const r = window.devicePixelRatio || 1;
    c.className = cls;
    c.width = Math.round(w * r);
    c.height = Math.round(h * r);
    c.style.width = w + "px";
    c.style.height = h + "px";
    c.getContext("2d").setTransform(r, 0, 0, r, 0, 0);
    return c;
  }

  const labels = bytes(DATA.labels);
  const atlas = new Image();
  atlas.src = "data:image/png;base64," + DATA.atlas;
  const inner = { w: PLOT - MARGIN.left - MARGIN.right, h: PLOT - MARGIN.top - MARGIN.bottom };

  // A fixed shuffled drawing order, so no digit hides all the others.
  const order = Array.from({ length: DATA.count }, (_, i) => i);
  let seed = 12345;
  for (let i = order.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }

  function makePanel(model, index) {
    const codes = floats(model.codes);
    const decode = makeDecoder(model.layers, model.deconvs);
    const { lo, hi } = model;
    const toPx = (z1, z2) => [
      MARGIN.left + ((z1 - lo[0]) / (hi[0] - lo[0])) * inner.w,
      MARGIN.top + ((hi[1] - z2) / (hi[1] - lo[1])) * inner.h,
    ];
    const toZ = (x, y) => [
      lo[0] + ((x - MARGIN.left) / inner.w) * (hi[0] - lo[0]),
      hi[1] - ((y - MARGIN.top) / inner.h) * (hi[1] - lo[1]),
    ];

    const section = document.createElement("section");
    section.className = "panel";
    section.id = "panel-" + model.kind;
    const h2 = document.createElement("h2");
    h2.textContent = model.name + " on " + DATA.dataset + ", epoch " + model.epoch;
    const plot = document.createElement("div");
    plot.className = "plot";
    plot.style.width = PLOT + "px";
    plot.style.height = PLOT + "px";
    const base = hidpiCanvas("base", PLOT, PLOT);
    const overlay = hidpiCanvas("overlay", PLOT, PLOT);
    plot.append(base, overlay);

    const views = document.createElement("div");
    views.className = "views";
    const figure = (cls, size, caption) => {
      const f = document.createElement("figure");
      const c = document.createElement("canvas");
      c.className = cls;
      c.width = size;
      c.height = size;
      const cap = document.createElement("figcaption");
      cap.textContent = caption;
      f.append(c, cap);
      views.append(f);
      return { canvas: c, caption: cap };
    };
    const decoded = figure("decoded", DECODED, "decoded: move over the plane");
    const hovered = figure("hovered", HOVERED, "test image: hover a dot");
    const content = document.createElement("div");
    content.className = "content";
    content.append(plot, views);
    section.append(h2, content);

    // The scatter and its axes, drawn once.
    const g = base.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, PLOT, PLOT);
    g.strokeStyle = "#e6e6e6";
    g.fillStyle = "#333";
    g.font = "12px 'DejaVu Sans', sans-serif";
    const tx = ticks(lo[0], hi[0], 7);
    const ty = ticks(lo[1], hi[1], 7);
    g.textAlign = "center";
    g.textBaseline = "top";
    for (const t of tx.values) {
      const [x] = toPx(t, 0);
      g.beginPath();
      g.moveTo(x, MARGIN.top);
      g.lineTo(x, MARGIN.top + inner.h);
      g.stroke();
      g.fillText(t.toFixed(tx.digits), x, MARGIN.top + inner.h + 5);
    }
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const t of ty.values) {
      const [, y] = toPx(0, t);
      g.beginPath();
      g.moveTo(MARGIN.left, y);
      g.lineTo(MARGIN.left + inner.w, y);
      g.stroke();
      g.fillText(t.toFixed(ty.digits), MARGIN.left - 6, y);
    }
    g.font = "14px 'DejaVu Sans', sans-serif";
    g.textAlign = "center";
    g.textBaseline = "bottom";
    g.fillText(model.axes[0], MARGIN.left + inner.w / 2, PLOT - 4);
    g.save();
    g.translate(14, MARGIN.top + inner.h / 2);
    g.rotate(-Math.PI / 2);
    g.textBaseline = "middle";
    g.fillText(model.axes[1], 0, 0);
    g.restore();
    g.strokeStyle = "#888";
    g.strokeRect(MARGIN.left, MARGIN.top, inner.w, inner.h);
    g.save();
    g.beginPath();
    g.rect(MARGIN.left, MARGIN.top, inner.w, inner.h);
    g.clip();
    g.globalAlpha = 0.6;
    const px = new Float32Array(2 * DATA.count);
    for (let i = 0; i < DATA.count; i++) {
      const [x, y] = toPx(codes[2 * i], codes[2 * i + 1]);
      px[2 * i] = x;
      px[2 * i + 1] = y;
    }
    for (const i of order) {
      g.fillStyle = PALETTE[labels[i] % 10];
      g.beginPath();
      g.arc(px[2 * i], px[2 * i + 1], 1.7, 0, 2 * Math.PI);
      g.fill();
    }
    g.restore();

    function nearest(x, y) {
      let best = -1;
      let bestD = HOVER_RADIUS * HOVER_RADIUS;
      for (let i = 0; i < DATA.count; i++) {
        const dx = px[2 * i] - x;
        const dy = px[2 * i + 1] - y;
        const d = dx * dx + dy * dy;
        if (d <= bestD) {
          bestD = d;
          best = i;
        }
      }
      return best;
    }

    function showDecoded(z, pixels, what) {
      const { rows, cols } = DATA;
      const small = document.createElement("canvas");
      small.width = cols;
      small.height = rows;
      const sg = small.getContext("2d");
      const img = sg.createImageData(cols, rows);
      for (let k = 0; k < rows * cols; k++) {
        const v = Math.round(255 * (1 - pixels[k]));
        img.data[4 * k] = v;
        img.data[4 * k + 1] = v;
        img.data[4 * k + 2] = v;
        img.data[4 * k + 3] = 255;
      }
      sg.putImageData(img, 0, 0);
      const dg = decoded.canvas.getContext("2d");
      dg.imageSmoothingEnabled = false;
      dg.drawImage(small, 0, 0, DECODED, DECODED);
      decoded.caption.textContent =
        what + ": z = (" + z[0].toFixed(3) + ", " + z[1].toFixed(3) + ")";
    }

    function showHovered(i) {
      if (i < 0) return;
      const hg = hovered.canvas.getContext("2d");
      hg.imageSmoothingEnabled = false;
      hg.fillStyle = "#fff";
      hg.fillRect(0, 0, HOVERED, HOVERED);
      const c = DATA.atlas_columns;
      hg.drawImage(atlas, (i % c) * DATA.cols, Math.floor(i / c) * DATA.rows,
        DATA.cols, DATA.rows, 0, 0, HOVERED, HOVERED);
      hovered.caption.textContent = "test image #" + i + ", digit " + labels[i] +
        "\ncode (" + codes[2 * i].toFixed(3) + ", " + codes[2 * i + 1].toFixed(3) + ")";
    }

    // Marks on the overlay: the pinned point (ring), the cursor (cross), the hovered dot.
    function drawMarks(cursor, pinned, hover) {
      const o = overlay.getContext("2d");
      o.clearRect(0, 0, PLOT, PLOT);
      o.save();
      o.beginPath();
      o.rect(MARGIN.left, MARGIN.top, inner.w, inner.h);
      o.clip();
      if (cursor) {
        const [x, y] = toPx(cursor[0], cursor[1]);
        o.strokeStyle = "rgba(0,0,0,0.45)";
        o.beginPath();
        o.moveTo(x - 9, y);
        o.lineTo(x + 9, y);
        o.moveTo(x, y - 9);
        o.lineTo(x, y + 9);
        o.stroke();
      }
      if (pinned) {
        const [x, y] = toPx(pinned[0], pinned[1]);
        o.lineWidth = 2.5;
        o.strokeStyle = "#000";
        o.beginPath();
        o.arc(x, y, 7, 0, 2 * Math.PI);
        o.stroke();
      }
      if (hover >= 0) {
        o.lineWidth = 2;
        o.strokeStyle = PALETTE[labels[hover] % 10];
        o.beginPath();
        o.arc(px[2 * hover], px[2 * hover + 1], 5, 0, 2 * Math.PI);
        o.stroke();
      }
      o.restore();
    }

    const where = (ev) => {
      const r = overlay.getBoundingClientRect();
      const x = ev.clientX - r.left;
      const y = ev.clientY - r.top;
      const inside = x >= MARGIN.left && x <= MARGIN.left + inner.w &&
        y >= MARGIN.top && y <= MARGIN.top + inner.h;
      return { x, y, inside };
    };

    const panel = {
      index, model, decode, toZ, overlay, showDecoded, showHovered, drawMarks, nearest,
      // Viewport coordinates of a latent point: what a test needs to click there.
      clientPoint(z1, z2) {
        const r = overlay.getBoundingClientRect();
        const [x, y] = toPx(z1, z2);
        return { x: r.left + x, y: r.top + y };
      },
    };

    overlay.addEventListener("mousemove", (ev) => {
      const p = where(ev);
      if (!p.inside) return;
      const z = toZ(p.x, p.y);
      const hover = nearest(p.x, p.y);
      showHovered(hover);
      for (const q of panels) {
        q.showDecoded(z, q.decode(z[0], z[1]), "at the cursor");
        q.drawMarks(z, state.pinned && state.pinned.z, q === panel ? hover : -1);
      }
    });
    overlay.addEventListener("mouseleave", () => showPinned(null));
    overlay.addEventListener("click", (ev) => {
      const p = where(ev);
      if (!p.inside) return;
      const z = toZ(p.x, p.y);
      state.pinned = {
        z: z,
        panel: index,
        decodes: panels.map((q) => Array.from(q.decode(z[0], z[1]))),
      };
      showPinned(z);
    });
    return { section, panel };
  }

  const state = { pinned: null };
  const panels = [];

  function showPinned(cursor) {
    for (let k = 0; k < panels.length; k++) {
      const q = panels[k];
      q.drawMarks(cursor, state.pinned && state.pinned.z, -1);
      if (state.pinned) q.showDecoded(state.pinned.z, state.pinned.decodes[k], "pinned");
    }
  }

  document.title = DATA.title;
  document.body.classList.add(DATA.models.length > 1 ? "multi" : "single");
  const legend = document.getElementById("legend");
  for (let d = 0; d < 10; d++) {
    const li = document.createElement("li");
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.style.background = PALETTE[d];
    li.append(dot, document.createTextNode(String(d)));
    legend.append(li);
  }
  const main = document.getElementById("panels");
  DATA.models.forEach((m, i) => {
    const { section, panel } = makePanel(m, i);
    main.append(section);
    panels.push(panel);
  });
  document.getElementById("footer").textContent =
    DATA.count + " test images of " + DATA.dataset + ". Each image is decoded in this page " +
    "from the model's own weights (float32, exported by latentlab), the same numbers " +
    "`latentlab decode` gives. Made by latentlab.";

  // For scripts and tests: where a latent point is on screen, and what was decoded there.
  window.latentlab = {
    models: DATA.models.map((m) => m.kind),
    ranges: DATA.models.map((m) => ({ lo: m.lo, hi: m.hi })),
    clientPoint: (k, z1, z2) => panels[k].clientPoint(z1, z2),
    decode: (k, z1, z2) => Array.from(panels[k].decode(z1, z2)),
    pinned: () => state.pinned,
    atlasReady: () => atlas.complete && atlas.naturalWidth > 0,
  };
  // Start with the origin pinned (it lies inside every model's codes), so no view is empty.
  atlas.addEventListener("load", () => panels.forEach((q) => q.showHovered(0)));
  if (panels.length > 0) {
    const z = [0, 0];
    state.pinned = { z: z, panel: 0, decodes: panels.map((q) => Array.from(q.decode(z[0], z[1]))) };
    showPinned(null);
  }
})();
