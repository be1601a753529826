// bandscope stem player, part 4 of 5: one view (transport, lanes, overview, axis, keys).

  // ---------------------------------------------------------------- one view
  const KIND_LABELS = { stft: "spectrogram", mel: "mel", cqt: "CQT", waveform: "waveform" };

  function noteName(f) {
    const midi = Math.round(69 + 12 * Math.log2(f / 440));
    return ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][midi % 12] + (Math.floor(midi / 12) - 1);
  }

  function freqTicks(freqs, kind) {
    // [row, label] pairs for the lane's frequency axis (Hz; CQT in note names).
    if (kind === "cqt") return [0, 24, 48, 72].filter((r) => r < freqs.length).map((r) => [r, noteName(freqs[r])]);
    const ticks = [];
    for (const hz of [100, 1000, 10000]) {
      if (hz < freqs[0] || hz > freqs[freqs.length - 1]) continue;
      let best = 0;
      freqs.forEach((f, r) => { if (Math.abs(Math.log(f / hz)) < Math.abs(Math.log(freqs[best] / hz))) best = r; });
      ticks.push([best, hz >= 1000 ? `${hz / 1000}k` : `${hz}`]);
    }
    return ticks;
  }

  function niceStep(span, pixels) {
    const target = span / Math.max(1, pixels / 90);
    for (const step of [0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (step >= target) return step;
    return 1200;
  }

  function view(model, el, host) {
    const { engine, tiles } = host;
    const tracks = model.get("tracks");
    const stems = model.get("stem_names");
    const lutOf = (key) => {
      const state = model.get(key);
      return Array.isArray(state) ? Uint8Array.from(state) : state ? bytesOf(state) : null;
    };
    const lut = lutOf("_lut");
    const luts = { db: lut, linear: lutOf("_lut_linear") || lut };
    const pictures = model.get("pictures") || [];
    const order = model.get("lane_order") || [...tracks, ...pictures];
    const mixer = model.get("mixer") !== false;
    const choices = mixer ? ["remix", ...(tracks.includes("mix") ? ["mix"] : []), ...stems] : tracks;
    const root = h("div", { class: "bn-player", tabindex: "0", "data-lm-suppress-shortcuts": "true" });
    const cleanups = [];
    let selected = Math.max(0, order.indexOf(stems[0]));

    // transport bar
    const playBtn = h("button", { class: "bn-play", title: "play / pause (space)" }, "▶");
    const stopBtn = h("button", { class: "bn-stop", title: "stop (back to 0:00)" }, "■");
    const time = h("span", { class: "bn-time" }, "0:00.0 / 0:00.0");
    const seekBar = h("input", { class: "bn-seek", type: "range", min: "0", step: "0.01", "aria-label": "position" });
    const loopBtn = h("button", { class: "bn-loop", title: "loop the visible span (L); shift-drag a lane to choose one" }, "⟲ loop");
    const abBtn = h("button", { class: "bn-ab", title: "A/B: switch to what you heard before (A)" }, "A/B");
    const listenSel = h("select", { class: "bn-listen", title: "what you hear" });
    // what a lane is called on screen (StemPlayer labels=), its name otherwise
    const labelOf = (name) => (model.get("lane_labels") || {})[name] ?? name;
    const choiceLabel = (name) => (name === "remix" ? "remix (mixer)" : name === "mix" ? "original mix" : mixer ? `${labelOf(name)} alone` : labelOf(name));
    for (const name of choices) listenSel.append(h("option", { value: name }, choiceLabel(name)));
    const kindSel = h("select", { class: "bn-kind", title: "lane picture" });
    const kinds = host.standalone ? ["stft", "waveform"] : ["stft", "mel", "cqt", "waveform"];
    for (const k of kinds) kindSel.append(h("option", { value: k }, KIND_LABELS[k]));
    const rangeIn = h("input", { class: "bn-range", type: "range", min: "20", max: "120", step: "5", title: "dB range shown" });
    const zoomIn = h("button", { class: "bn-zoom-in", title: "zoom in (+)" }, "+");
    const zoomOut = h("button", { class: "bn-zoom-out", title: "zoom out (−)" }, "−");
    const zoomFit = h("button", { class: "bn-zoom-fit", title: "whole track (0)" }, "fit");
    const downloadSel = h("select", { class: "bn-download", title: "download as WAV" }, h("option", { value: "" }, "download…"));
    // One track and no mix: nothing to mix or compare, so no mixer, A/B or remix.
    const single = tracks.length === 1;
    const copyNote = host.standalone ? " (from the Ogg copy)" : "";
    // a download is named after what the lane is called ("vocals · true stem.wav", not "run 3.wav")
    const fileOf = (name) => `${(name === "remix" ? "remix" : String(labelOf(name))).replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").trim().slice(0, 80) || name}.wav`;
    const downloadNames = [...(single || !mixer ? [] : ["remix"]), ...tracks];
    const downloadOptions = downloadNames.map((name) => h("option", { value: name }, `${fileOf(name)}${copyNote}`));
    downloadSel.append(...downloadOptions);
    const colourBar = h("canvas", { class: "bn-colourbar", width: "120", height: "10" });
    const colourLabel = h("span", { class: "bn-colourlabel" });
    const note = h("span", { class: "bn-note" }, model.get("note") || "");
    const rangeBox = h("label", { class: "bn-rangebox" }, colourLabel, colourBar, rangeIn);
    const bar = h("div", { class: "bn-bar" },
      h("span", { class: "bn-group" }, playBtn, stopBtn, time),
      h("span", { class: "bn-group bn-grow" }, seekBar),
      h("span", { class: "bn-group" }, loopBtn, ...(single ? [] : [abBtn, listenSel])),
      h("span", { class: "bn-group" }, kindSel, rangeBox),
      h("span", { class: "bn-group" }, zoomOut, zoomIn, zoomFit, downloadSel));
    if (host.standalone) rangeIn.style.display = "none"; // the offline pictures are coloured already
    if (host.standalone) note.classList.add("bn-info");

    // overview strip (drag the box to scroll) and lanes
    const overview = h("canvas", { class: "bn-overview-canvas" });
    const overviewRow = h("div", { class: "bn-row bn-overview" }, h("div", { class: "bn-strip bn-strip-label" }, "whole track"), h("div", { class: "bn-cell" }, overview));
    const lanes = order.map((name, i) => {
      const audible = tracks.includes(name);
      const index = audible ? tracks.indexOf(name) : tracks.length + pictures.indexOf(name);
      const canvas = h("canvas", { class: "bn-lane-canvas", "data-track": name });
      const head = h("div", { class: "bn-head" });
      const loopBand = h("div", { class: "bn-loopband" });
      const strip = h("div", { class: "bn-strip" });
      const label = h("span", { class: "bn-name", title: labelOf(name) }, labelOf(name));
      strip.append(label);
      let mute = null, solo = null, gain = null, gainText = null, hear = null;
      if (mixer && stems.includes(name) && !single) {
        mute = h("button", { class: "bn-mute", title: `mute ${name} (M)` }, "M");
        solo = h("button", { class: "bn-solo", title: `solo ${name} (S)` }, "S");
        gain = h("input", { class: "bn-gain", type: "range", min: "-60", max: "12", step: "0.5", "aria-label": `${name} gain (dB)` });
        gainText = h("span", { class: "bn-db" });
        strip.append(h("span", { class: "bn-controls" }, mute, solo, gain, gainText));
        mute.addEventListener("click", () => toggle("muted", name));
        solo.addEventListener("click", () => toggle("soloed", name));
        gain.addEventListener("input", () => {
          model.set("gains", { ...model.get("gains"), [name]: Number(gain.value) });
          model.save_changes();
        });
        gain.addEventListener("dblclick", () => { model.set("gains", { ...model.get("gains"), [name]: 0 }); model.save_changes(); });
      } else if (mixer && name === "mix") {
        hear = h("button", { class: "bn-hear", title: "hear the original mix (A/B)" }, "hear");
        hear.addEventListener("click", () => listenTo(model.get("listen") === "mix" ? "remix" : "mix"));
      } else if (audible && !single) {
        hear = h("button", { class: "bn-hear", title: `hear ${labelOf(name)} (A/B: the one heard before)` }, "hear");
        hear.addEventListener("click", () => listenTo(name));
      } else if (!audible) {
        const legend = h("canvas", { class: "bn-legend", width: "64", height: "8", title: "0 (dark) to 1 (bright)" });
        const g = legend.getContext("2d");
        for (let x = 0; x < 64; x++) {
          const q = Math.round((x / 63) * 255);
          g.fillStyle = `rgb(${luts.linear[3 * q]},${luts.linear[3 * q + 1]},${luts.linear[3 * q + 2]})`;
          g.fillRect(x, 0, 1, 8);
        }
        strip.append(h("span", { class: "bn-controls" }, h("span", { class: "bn-legend-label" }, "0"), legend, h("span", { class: "bn-legend-label" }, "1")));
      }
      if (hear) strip.append(hear);
      // a name and its hear button stay on one line (a long name ends in "…", its title whole)
      if (hear && !strip.querySelector(".bn-controls")) strip.classList.add("bn-oneline");
      const cell = h("div", { class: "bn-cell" }, canvas, loopBand, head);
      const row = h("div", { class: `bn-row bn-lane${audible ? "" : " bn-picture"}`, "data-track": name }, strip, cell);
      row.addEventListener("pointerdown", () => { selected = i; refreshMixer(); });
      row.addEventListener("focusin", () => { selected = i; refreshMixer(); });
      return { name, index, audible, canvas, head, loopBand, row, label, mute, solo, gain, gainText, hear, cell, wave: null };
    });
    const axis = h("canvas", { class: "bn-axis-canvas" });
    const axisRow = h("div", { class: "bn-row bn-axis" }, h("div", { class: "bn-strip" }, h("span", { class: "bn-hint" }, "click: seek · drag: scrub · shift-drag: loop · ctrl-wheel: zoom")), h("div", { class: "bn-cell" }, axis));
    root.append(bar, overviewRow, ...lanes.map((l) => l.row), axisRow, h("div", { class: "bn-footer" }, note));
    el.append(root);

    function toggle(key, name) {
      const set = new Set(model.get(key));
      set.has(name) ? set.delete(name) : set.add(name);
      model.set(key, stems.filter((n) => set.has(n)));
      if (model.get("listen") !== "remix" && model.get("listen") !== "mix") model.set("listen", "remix");
      model.save_changes();
    }

    // ---------- drawing
    const css = () => getComputedStyle(root);
    let width = 0;
    function sizeCanvas(canvas, cssHeight) {
      const ratio = window.devicePixelRatio || 1;
      const w = Math.max(50, Math.floor(canvas.parentElement.clientWidth));
      canvas.style.width = `${w}px`;
      canvas.style.height = `${cssHeight}px`;
      canvas.width = Math.floor(w * ratio);
      canvas.height = Math.floor(cssHeight * ratio);
      return w;
    }
    function layout() {
      const laneH = model.get("lane_height");
      lanes.forEach((lane) => { width = sizeCanvas(lane.canvas, laneH); });
      sizeCanvas(overview, 22);
      sizeCanvas(axis, 18);
      drawAll();
    }
    const getView = () => {
      const v = model.get("view");
      return v && v.length === 2 ? v : [0, model.get("duration")];
    };
    const xOf = (t, w) => ((t - getView()[0]) / (getView()[1] - getView()[0])) * w;
    const tOf = (x, w) => getView()[0] + (x / w) * (getView()[1] - getView()[0]);

    function drawTiles(g, list, w, hgt, span) {
      const dbRange = model.get("db_range");
      for (const tile of list) {
        const [v0, v1] = span;
        const a = Math.max(v0, tile.t0), b = Math.min(v1, tile.t1);
        if (b <= a) continue;
        const src = tiles.canvas(tile, luts, dbRange);
        const cols = tile.image ? tile.image.naturalWidth || tile.image.width : tile.cols;
        const rows = tile.image ? tile.image.naturalHeight || tile.image.height : tile.rows;
        const sx = ((a - tile.t0) / (tile.t1 - tile.t0)) * cols;
        const sw = Math.max(0.5, ((b - a) / (tile.t1 - tile.t0)) * cols);
        const dx = ((a - v0) / (v1 - v0)) * w;
        const dw = ((b - a) / (v1 - v0)) * w;
        g.drawImage(src, sx, 0, sw, rows, dx, 0, dw, hgt);
      }
    }
    function waveColumns(lane, span, w) {
      const buffers = engine.buffers;
      if (!buffers) return null;
      const key = `${span[0]}:${span[1]}:${w}`;
      if (lane.wave && lane.wave.key === key) return lane.wave;
      const buf = buffers[lane.index];
      const scale = (engine.sourceScales ? 1 : engine.scales()[lane.index]) || 1;
      const data = Array.from({ length: buf.numberOfChannels }, (_, c) => buf.getChannelData(c));
      const lo = new Float32Array(w), hi = new Float32Array(w);
      for (let x = 0; x < w; x++) {
        const s0 = Math.floor((span[0] + ((span[1] - span[0]) * x) / w) * buf.sampleRate);
        const s1 = Math.max(s0 + 1, Math.floor((span[0] + ((span[1] - span[0]) * (x + 1)) / w) * buf.sampleRate));
        let mn = 0, mx = 0;
        const stride = Math.max(1, Math.floor((s1 - s0) / 256));
        for (let s = s0; s < Math.min(s1, buf.length); s += stride) {
          let v = 0;
          for (const ch of data) v += ch[s];
          v = (v / data.length) * scale;
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
        lo[x] = mn; hi[x] = mx;
      }
      lane.wave = { key, lo, hi };
      return lane.wave;
    }
    function drawLane(i) {
      const lane = lanes[i];
      const c = lane.canvas, g = c.getContext("2d");
      const ratio = c.width / (c.clientWidth || c.width);
      const w = c.width, hgt = c.height;
      const style = css();
      g.setTransform(1, 0, 0, 1, 0, 0);
      g.fillStyle = style.getPropertyValue("--bn-lane-bg").trim() || "#000";
      g.fillRect(0, 0, w, hgt);
      const kind = model.get("kind");
      const span = getView();
      let freqs = null;
      if (kind === "waveform" && lane.audible) {
        if (!engine.buffers) engine.prepare().then(() => drawAll());
        const cols = waveColumns(lane, span, Math.floor(w));
        g.fillStyle = style.getPropertyValue("--bn-wave").trim() || "#4c9be8";
        if (cols) for (let x = 0; x < cols.lo.length; x++) {
          const y0 = hgt / 2 - (cols.hi[x] * hgt) / 2, y1 = hgt / 2 - (cols.lo[x] * hgt) / 2;
          g.fillRect(x, clamp(y0, 0, hgt), 1, Math.max(1, clamp(y1, 0, hgt) - clamp(y0, 0, hgt)));
        }
      } else {
        const list = tiles.list(kind, lane.index).length ? tiles.list(kind, lane.index) : tiles.list("stft", lane.index);
        drawTiles(g, list, w, hgt, span);
        freqs = list.length ? list[0].freqs : null;
      }
      // frequency labels
      g.font = `${10 * ratio}px sans-serif`;
      g.textBaseline = "middle";
      if (freqs && freqs.length) for (const [row, label] of freqTicks(freqs, kind)) {
        const y = hgt - ((row + 0.5) / freqs.length) * hgt;
        g.fillStyle = "rgba(0,0,0,0.55)";
        g.fillRect(0, y - 6 * ratio, g.measureText(label).width + 6 * ratio, 12 * ratio);
        g.fillStyle = "#fff";
        g.fillText(label, 3 * ratio, y);
      }
      // loop band
      const loop = pendingLoop || engine.loopSpan();
      if (loop) {
        const cw = c.clientWidth;
        const a = clamp(xOf(loop[0], cw), 0, cw), b = clamp(xOf(loop[1], cw), 0, cw);
        Object.assign(lane.loopBand.style, { display: b > a ? "block" : "none", left: `${a}px`, width: `${b - a}px` });
      } else lane.loopBand.style.display = "none";
    }
    function drawOverview() {
      const g = overview.getContext("2d");
      const w = overview.width, hgt = overview.height;
      g.fillStyle = css().getPropertyValue("--bn-lane-bg").trim() || "#000";
      g.fillRect(0, 0, w, hgt);
      drawTiles(g, tiles.list("stft", 0).slice(0, 1), w, hgt, [0, model.get("duration")]);
      const [v0, v1] = getView();
      const d = model.get("duration");
      g.strokeStyle = "#fff";
      g.lineWidth = 2 * (window.devicePixelRatio || 1);
      if (v1 - v0 < d - 1e-3) g.strokeRect((v0 / d) * w + 1, 1, Math.max(4, ((v1 - v0) / d) * w - 2), hgt - 2);
    }
    function drawAxis() {
      const g = axis.getContext("2d");
      const ratio = axis.width / (axis.clientWidth || axis.width);
      const w = axis.width, hgt = axis.height;
      const style = css();
      g.clearRect(0, 0, w, hgt);
      g.fillStyle = style.color;
      g.strokeStyle = style.color;
      g.font = `${10 * ratio}px sans-serif`;
      g.textBaseline = "top";
      const [v0, v1] = getView();
      const step = niceStep(v1 - v0, axis.clientWidth || w);
      for (let t = Math.ceil(v0 / step) * step; t <= v1 + 1e-9; t += step) {
        const x = xOf(t, w);
        g.fillRect(x, 0, ratio, 4 * ratio);
        const label = step < 0.1 ? clockFine(t) : step < 1 ? clock(t) : clock(t).replace(/\.\d$/, "");
        g.textAlign = x < 20 ? "left" : x > w - 30 ? "right" : "center";
        g.fillText(label, x, 6 * ratio);
      }
    }
    function drawColourBar() {
      const g = colourBar.getContext("2d");
      for (let x = 0; x < colourBar.width; x++) {
        const q = Math.round((x / (colourBar.width - 1)) * 255);
        g.fillStyle = `rgb(${lut[3 * q]},${lut[3 * q + 1]},${lut[3 * q + 2]})`;
        g.fillRect(x, 0, 1, colourBar.height);
      }
      const top = model.get("ref_db");
      colourLabel.textContent = `${Math.round(top - model.get("db_range"))} … ${Math.round(top)} dB`;
    }
    let lastDraw = 0;
    function drawAll() {
      const t0 = performance.now();
      lanes.forEach((_, i) => drawLane(i));
      drawOverview();
      drawAxis();
      drawColourBar();
      lastDraw = performance.now() - t0;
      root.dataset.drawMs = lastDraw.toFixed(1);
      moveHead();
      scheduleSharpen();
    }

    // ---------- sharper tiles after a zoom
    let sharpenTimer = null;
    function scheduleSharpen() {
      clearTimeout(sharpenTimer);
      sharpenTimer = setTimeout(() => {
        const kind = model.get("kind");
        if (kind === "waveform" || !tiles.live) return;
        const [v0, v1] = getView();
        const cols = Math.min(4096, Math.round(width * (window.devicePixelRatio || 1)));
        // every lane (a lane given new audio or a new mask has lost its sharper tiles)
        if (lanes.some((l) => !tiles.list(kind, l.index).length)) return tiles.ask(kind, 0, model.get("duration"), 1600);
        const sharp = lanes.every((l) => {
          const best = tiles.list(kind, l.index).filter((t) => t.t0 <= v0 + 1e-6 && t.t1 >= v1 - 1e-6);
          return Math.max(...best.map((t) => t.cols / (t.t1 - t.t0))) * (v1 - v0) >= cols * 0.75;
        });
        if (!sharp) tiles.ask(kind, v0, v1, cols);
      }, SHARPEN_DELAY_MS);
    }

    // ---------- transport readouts and playhead
    function moveHead() {
      const t = engine.position();
      lanes.forEach((lane) => {
        const w = lane.canvas.clientWidth;
        const x = xOf(t, w);
        lane.head.style.display = x >= 0 && x <= w ? "block" : "none";
        lane.head.style.transform = `translateX(${x}px)`;
      });
      const d = engine.duration;
      time.textContent = `${clock(t)} / ${clock(d)}`;
      seekBar.max = String(d);
      if (!seeking) seekBar.value = String(t);
      playBtn.textContent = engine.playing ? "❚❚" : "▶";
      playBtn.classList.toggle("bn-on", engine.playing);
      root.dataset.position = t.toFixed(3);
      root.dataset.playing = String(engine.playing);
    }
    let frame = 0;
    const tick = () => {
      moveHead();
      if (engine.playing) {
        const [v0, v1] = getView();
        const t = engine.position();
        if (t > v1 || t < v0) setView(t - 0.05 * (v1 - v0), t + 0.95 * (v1 - v0)); // follow the playhead
      }
      frame = requestAnimationFrame(tick);
    };
    frame = requestAnimationFrame(tick);
    cleanups.push(() => cancelAnimationFrame(frame));

    function refreshMixer() {
      noteListen();
      const muted = new Set(model.get("muted")), soloed = new Set(model.get("soloed"));
      const gains = model.get("gains") || {};
      const heard = trackGains(model);
      lanes.forEach((lane, i) => {
        lane.row.classList.toggle("bn-selected", i === selected);
        // with a mixer, a lane not heard is dimmed; without one (a comparison), all stay bright
        lane.row.classList.toggle("bn-silent", mixer && lane.audible && !heard[lane.name]);
        if (!lane.mute) {
          if (lane.hear) lane.hear.classList.toggle("bn-on", model.get("listen") === lane.name);
          return;
        }
        lane.mute.classList.toggle("bn-on", muted.has(lane.name));
        lane.solo.classList.toggle("bn-on", soloed.has(lane.name));
        const db = gains[lane.name] ?? 0;
        if (document.activeElement !== lane.gain) lane.gain.value = String(db);
        lane.gainText.textContent = `${db > 0 ? "+" : ""}${db.toFixed(1)} dB`;
      });
      listenSel.value = model.get("listen");
      abBtn.classList.toggle("bn-on", model.get("listen") !== abFirst);
      loopBtn.classList.toggle("bn-on", !!engine.loopSpan());
      kindSel.value = model.get("kind");
      rangeBox.style.display = model.get("kind") === "waveform" ? "none" : ""; // no colours to explain
      rangeIn.value = String(model.get("db_range"));
      note.textContent = model.get("note") || "";
    }

    // ---------- view changes (browser only)
    // Offline pages hold one picture per lane: zoom no further than 4x into it.
    const minSpan = host.standalone ? model.get("image_t1") / 4 : 0.25;
    function setView(a, b) {
      const d = model.get("duration");
      const span = clamp(b - a, Math.min(minSpan, d), d);
      a = clamp(a, 0, d - span);
      model.set("view", [a, a + span]);
      model.save_changes();
    }
    function zoom(factor, centre) {
      const [v0, v1] = getView();
      const head = engine.position();
      const c = centre ?? (head >= v0 && head <= v1 ? head : (v0 + v1) / 2);
      setView(c - (c - v0) * factor, c + (v1 - c) * factor);
    }

    // ---------- events
    let seeking = false;
    let pendingLoop = null; // a loop being drawn with shift-drag
    let lastLoop = null; // the loop the loop button brings back
    playBtn.addEventListener("click", () => (engine.playing ? engine.pause() : engine.play(engine.position())));
    stopBtn.addEventListener("click", () => engine.stop());
    seekBar.addEventListener("input", () => { seeking = true; time.textContent = `${clock(Number(seekBar.value))} / ${clock(engine.duration)}`; });
    seekBar.addEventListener("change", () => { seeking = false; engine.seek(Number(seekBar.value)); });
    loopBtn.addEventListener("click", () => {
      const now = engine.loopSpan();
      if (now) lastLoop = now;
      model.set("loop", now ? [] : lastLoop || getView());
      model.save_changes();
    });
    abBtn.addEventListener("click", abSwitch);
    // A/B: what is heard against what was heard before it, whichever control (or Python)
    // chose them, so any two choices compare; at first the remix against the original mix
    // (with a mixer) or the first track against the next.
    const abFirst = model.get("listen");
    let heardLast = abFirst;
    let abOther = mixer ? (tracks.includes("mix") ? "mix" : stems[0]) : [...stems, ...tracks].find((n) => n !== abFirst);
    function noteListen() {
      const now = model.get("listen");
      if (now !== heardLast) [abOther, heardLast] = [heardLast, now];
    }
    function listenTo(name) {
      if (name === model.get("listen")) return;
      model.set("listen", name);
      model.save_changes();
    }
    function abSwitch() {
      listenTo(abOther);
    }
    listenSel.addEventListener("change", () => listenTo(listenSel.value));
    kindSel.addEventListener("change", () => { model.set("kind", kindSel.value); model.save_changes(); });
    rangeIn.addEventListener("input", () => { model.set("db_range", Number(rangeIn.value)); model.save_changes(); });
    zoomIn.addEventListener("click", () => zoom(0.5));
    zoomOut.addEventListener("click", () => zoom(2));
    zoomFit.addEventListener("click", () => setView(0, model.get("duration")));
    downloadSel.addEventListener("change", () => {
      const which = downloadSel.value;
      downloadSel.value = "";
      if (which) engine.download(which, fileOf(which));
    });
    lanes.forEach((lane) => {
      const c = lane.cell;
      let drag = null;
      let lastSeek = 0;
      c.addEventListener("pointerdown", (e) => {
        c.setPointerCapture(e.pointerId);
        const t = tOf(e.offsetX, lane.canvas.clientWidth);
        drag = { loop: e.shiftKey, from: t };
        if (!drag.loop) engine.seek(t);
      });
      c.addEventListener("pointermove", (e) => {
        if (!drag) return;
        const t = tOf(clamp(e.offsetX, 0, lane.canvas.clientWidth), lane.canvas.clientWidth);
        if (drag.loop) {
          pendingLoop = Math.abs(t - drag.from) > 0.05 ? [Math.min(t, drag.from), Math.max(t, drag.from)] : null;
          lanes.forEach((_, i) => drawLane(i)); // the band follows; the loop applies on release
        } else if (performance.now() - lastSeek > 80) {
          lastSeek = performance.now();
          engine.seek(t);
        }
      });
      c.addEventListener("pointerup", (e) => {
        if (drag && drag.loop && pendingLoop) {
          model.set("loop", pendingLoop);
          model.save_changes();
        } else if (drag && !drag.loop) {
          engine.seek(tOf(clamp(e.offsetX, 0, lane.canvas.clientWidth), lane.canvas.clientWidth));
        }
        drag = null;
        pendingLoop = null;
      });
      c.addEventListener("pointercancel", () => { drag = null; pendingLoop = null; });
      c.addEventListener("wheel", (e) => {
        const t = tOf(e.offsetX, lane.canvas.clientWidth);
        if (e.ctrlKey || e.metaKey) {
          e.preventDefault();
          zoom(Math.exp(clamp(e.deltaY, -200, 200) / 300), t);
        } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
          e.preventDefault();
          const [v0, v1] = getView();
          const dx = (e.deltaX || e.deltaY) / lane.canvas.clientWidth; // browsers turn shift-wheel into deltaX
          setView(v0 + dx * (v1 - v0), v1 + dx * (v1 - v0));
        }
      }, { passive: false });
    });
    let ovDrag = null;
    overview.addEventListener("pointerdown", (e) => {
      overview.setPointerCapture(e.pointerId);
      const d = model.get("duration");
      const t = (e.offsetX / overview.clientWidth) * d;
      const [v0, v1] = getView();
      if (t < v0 || t > v1) setView(t - (v1 - v0) / 2, t + (v1 - v0) / 2);
      ovDrag = { x: e.offsetX, view: getView() };
    });
    overview.addEventListener("pointermove", (e) => {
      if (!ovDrag) return;
      const dt = ((e.offsetX - ovDrag.x) / overview.clientWidth) * model.get("duration");
      setView(ovDrag.view[0] + dt, ovDrag.view[1] + dt);
    });
    overview.addEventListener("pointerup", () => { ovDrag = null; });
    root.addEventListener("keydown", (e) => {
      if (e.target.tagName === "SELECT" || (e.target.tagName === "INPUT" && e.key.startsWith("Arrow"))) return;
      const key = e.key.toLowerCase();
      const lane = lanes[selected];
      const acts = {
        " ": () => (engine.playing ? engine.pause() : engine.play(engine.position())),
        arrowleft: () => engine.seek(engine.position() - (e.shiftKey ? 1 : 5)),
        arrowright: () => engine.seek(engine.position() + (e.shiftKey ? 1 : 5)),
        arrowup: () => { selected = Math.max(0, selected - 1); refreshMixer(); },
        arrowdown: () => { selected = Math.min(lanes.length - 1, selected + 1); refreshMixer(); },
        home: () => engine.seek(0),
        end: () => engine.seek(engine.duration),
        m: () => lane.mute && toggle("muted", lane.name),
        s: () => lane.solo && toggle("soloed", lane.name),
        a: abSwitch,
        l: () => loopBtn.click(),
        "+": () => zoom(0.5),
        "=": () => zoom(0.5),
        "-": () => zoom(2),
        0: () => setView(0, model.get("duration")),
      };
      if (/^[1-9]$/.test(key) && Number(key) <= lanes.length) acts[key] = () => { selected = Number(key) - 1; refreshMixer(); };
      if (!acts[key]) return;
      e.preventDefault();
      e.stopPropagation(); // keep JupyterLab's command-mode shortcuts (M: markdown, A: insert) away
      acts[key]();
    });

    // ---------- model events
    const onModel = (evt, f) => { model.on(evt, f); cleanups.push(() => model.off(evt, f)); };
    onModel("change:lane_labels", () => {
      lanes.forEach((l) => { l.label.textContent = labelOf(l.name); l.label.title = labelOf(l.name); });
      downloadOptions.forEach((o, i) => { o.textContent = `${fileOf(downloadNames[i])}${copyNote}`; });
    });
    onModel("change:view", drawAll);
    onModel("change:kind", () => { refreshMixer(); drawAll(); });
    onModel("change:db_range", () => { refreshMixer(); drawAll(); });
    onModel("change:loop", () => { refreshMixer(); drawAll(); });
    for (const key of ["gains", "muted", "soloed", "listen", "note"]) onModel(`change:${key}`, refreshMixer);
    const stopTiles = (() => { const f = () => drawAll(); tiles.listeners.add(f); return () => tiles.listeners.delete(f); })();
    let drawnBuffers = engine.buffers;
    cleanups.push(stopTiles, engine.on(() => {
      refreshMixer();
      moveHead();
      if (engine.buffers !== drawnBuffers) { // the audio arrived: waveforms can be drawn
        drawnBuffers = engine.buffers;
        lanes.forEach((l) => { l.wave = null; });
        if (model.get("kind") === "waveform") drawAll();
      }
    }));
    const resize = new ResizeObserver(() => layout());
    resize.observe(root);
    cleanups.push(() => resize.disconnect());

    // for tests and scripts: the engine, the view's timings, the offline render of the mix
    root.bandscope = { engine, tiles, audio: host.audio, drawAll, setView, zoom, render: (g, options) => engine.render(g, options), trackGains: () => trackGains(model) };
    refreshMixer();
    layout();
    // Until the audio is in: progress, and after a while without any, where to listen instead.
    if (host.audio) {
      const waiting = () => {
        if (!root.dataset.ready) note.textContent = `Loading audio… ${Math.round(100 * host.audio.progress())}%`;
      };
      host.audio.listeners.add(waiting);
      cleanups.push(() => host.audio.listeners.delete(waiting));
      waiting();
      const orphan = setTimeout(() => {
        if (!host.audio.seen.size) note.textContent = "No kernel is sending this player's audio (the notebook was reopened without running it): play the offline copy below, or run the cell again.";
      }, 6000);
      cleanups.push(() => clearTimeout(orphan));
    }
    setTimeout(() => engine.prepare().then(() => {
      root.dataset.ready = "1";
      note.textContent = model.get("note") || "";
    }), 0);
    return () => cleanups.forEach((f) => f());
  }
