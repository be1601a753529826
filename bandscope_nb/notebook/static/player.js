// bandscope stem player: Web Audio mixer, transport and spectrogram lanes.
//
// One file, two hosts. As an anywidget module (Python appends `export default
// BandscopePlayer.widget`) the state lives in the widget model and audio arrives as 16-bit PCM
// buffers. In an offline page (StemPlayer.save_html, a notebook's offline copy, an nbconvert
// export) `BandscopePlayer.upgrade(element)` reads the page's own <audio> and <img> elements
// into a local model with the same interface. Either way: every track is
// AudioBufferSourceNode -> GainNode -> master on one AudioContext, every source of a play starts
// with one start(when, offset), and mixer changes are gain ramps (MDN: "Web Audio API best
// practices", AudioParam.linearRampToValueAtTime).
(() => {
  "use strict";
  const RANGE_DB = 120; // the span one tile byte covers (lanes.py)
  const RAMP_S = 0.02;
  const START_AHEAD_S = 0.04;
  const POSITION_SYNC_MS = 500;
  const SHARPEN_DELAY_MS = 180;
  const MAX_SHARP_TILES = 6;

  // ---------------------------------------------------------------- helpers
  const h = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  };
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const clock = (s) => {
    s = Math.max(0, s);
    const m = Math.floor(s / 60);
    return `${m}:${(s - 60 * m).toFixed(1).padStart(4, "0")}`;
  };
  const clockFine = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(2).padStart(5, "0")}`;
  const bytesOf = (view) =>
    view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

  // What each track's GainNode is ramped to: bandscope_nb.notebook.player.StemPlayer.track_gains.
  function trackGains(model) {
    const listen = model.get("listen");
    if (model.get("mixer") === false) { // one track heard at a time, as it is
      return Object.fromEntries(model.get("tracks").map((n) => [n, n === listen ? 1 : 0]));
    }
    const names = model.get("stem_names");
    const gains = model.get("gains") || {};
    const muted = new Set(model.get("muted"));
    const soloed = new Set(model.get("soloed"));
    const linear = (n) => Math.pow(10, (gains[n] ?? 0) / 20);
    const out = {};
    for (const n of names) {
      if (listen === "mix") out[n] = 0;
      else if (listen !== "remix") out[n] = n === listen ? linear(n) : 0;
      else if (soloed.size) out[n] = soloed.has(n) ? linear(n) : 0;
      else out[n] = muted.has(n) ? 0 : linear(n);
    }
    if (model.get("tracks").includes("mix")) out.mix = listen === "mix" ? 1 : 0;
    return out;
  }

  // 16-bit planar PCM (channel after channel, `frames` each) into `buffer` from frame `at`.
  function pcmInto(buffer, bytes, frames, at) {
    const aligned = bytes.byteOffset % 2 ? bytes.slice() : bytes;
    const pcm = new Int16Array(aligned.buffer, aligned.byteOffset, buffer.numberOfChannels * frames);
    for (let c = 0; c < buffer.numberOfChannels; c++) {
      const out = buffer.getChannelData(c);
      for (let i = 0; i < frames; i++) out[at + i] = pcm[c * frames + i] / 32767;
    }
  }

  // The audio the kernel pushes after the widget opens (player_audio.py): time slice by time
  // slice, each track's chunk of 16-bit planar PCM. Playable once the first slice is in (each
  // slice's chunks become AudioBuffers that the engine schedules back to back); complete once
  // every slice is, when the chunks are joined into one AudioBuffer per track. A track given
  // new audio (StemPlayer.replace_track) comes as "replace" chunks of a newer generation and
  // is swapped in once whole and once the first audio is complete.
  class PcmAudio {
    constructor(model) {
      this.model = model;
      this.tracks = model.get("tracks").length;
      this.channels = model.get("channels");
      this.rate = model.get("sample_rate");
      this.scales = [...(model.get("_scales") || [])];
      this.gens = [];
      this.incoming = [];
      this.replaceListeners = new Set();
      this.slices = [];
      this.seen = new Set();
      this.timeline = [];
      this.parts = null;
      this.buffers = null;
      this.listeners = new Set();
      this.sliceListeners = new Set();
      this.playable = new Promise((resolve) => { this.resolvePlayable = resolve; });
      this.complete = new Promise((resolve) => { this.resolveComplete = resolve; });
      model.on("msg:custom", (msg, buffers) => this.receive(msg, buffers));
      // A page reloaded while the kernel runs gets no push: ask for the audio again.
      setTimeout(() => { if (!this.seen.size) model.send({ type: "audio" }); }, 1500);
    }
    receive(msg, buffers) {
      if (msg && msg.type === "replace") return this.receiveReplace(msg, buffers);
      if (!msg || msg.type !== "audio") return;
      const key = `${msg.track}:${msg.offset}`;
      if (this.seen.has(key)) return;
      const t0 = performance.now();
      this.seen.add(key);
      this.parts = msg.slices * this.tracks;
      const n = msg.frames;
      const chunk = new AudioBuffer({ numberOfChannels: this.channels, length: n, sampleRate: this.rate });
      pcmInto(chunk, bytesOf(buffers[0]), n, 0);
      const slice = (this.slices[msg.slice] ??= { start: msg.offset, frames: n, buffers: [], count: 0 });
      slice.buffers[msg.track] = chunk;
      slice.count += 1;
      this.timeline.push([t0, performance.now() - t0]); // arrival, ms spent here
      if (slice.count === this.tracks) {
        if (msg.slice === 0) this.resolvePlayable();
        for (const listener of this.sliceListeners) listener(msg.slice);
      }
      if (this.seen.size === this.parts) this.join();
      for (const listener of this.listeners) listener();
    }
    join() {
      const length = this.slices.reduce((sum, s) => sum + s.frames, 0);
      this.buffers = Array.from({ length: this.tracks }, (_, t) => {
        const whole = new AudioBuffer({ numberOfChannels: this.channels, length, sampleRate: this.rate });
        for (const s of this.slices) for (let c = 0; c < this.channels; c++) whole.copyToChannel(s.buffers[t].getChannelData(c), c, s.start);
        return whole;
      });
      this.resolveComplete(this.buffers);
    }
    receiveReplace(msg, buffers) {
      const t = msg.track;
      if (msg.gen <= (this.gens[t] || 0)) return; // this audio or newer is in already
      let next = this.incoming[t];
      if (next && next.gen > msg.gen) return;
      if (!next || next.gen !== msg.gen) {
        const length = this.model.get("frames");
        next = this.incoming[t] = { gen: msg.gen, scale: msg.scale, parts: msg.parts, got: 0,
          buffer: new AudioBuffer({ numberOfChannels: this.channels, length, sampleRate: this.rate }) };
      }
      pcmInto(next.buffer, bytesOf(buffers[0]), msg.frames, msg.offset);
      if (++next.got < next.parts) return;
      this.incoming[t] = null;
      this.gens[t] = next.gen;
      this.complete.then(() => {
        if (this.gens[t] !== next.gen) return; // a newer one came meanwhile
        this.buffers = this.buffers.map((b, i) => (i === t ? next.buffer : b));
        this.scales[t] = next.scale;
        for (const listener of this.replaceListeners) listener(t);
      });
    }
    progress() {
      return this.parts ? this.seen.size / this.parts : 0;
    }
  }

  // One time slice of every track, started together at when + (slice start - offset): the
  // slices of a track follow each other sample for sample, and the tracks share each start.
  function startSlice(ctx, nodes, audio, k, when, offset) {
    const slice = audio.slices[k];
    const t0 = slice.start / audio.rate;
    const t1 = (slice.start + slice.frames) / audio.rate;
    if (t1 <= offset) return [];
    const at = when + Math.max(0, t0 - offset);
    const from = Math.max(0, offset - t0);
    return slice.buffers.map((buffer, i) => {
      const src = ctx.createBufferSource();
      src.buffer = buffer;
      src.connect(nodes[i]);
      src.start(at, from);
      return Object.assign(src, { at, from, track: i });
    });
  }

  // Audio decoded whole (the offline copy's Ogg): playable when complete.
  function wholeAudio(load) {
    const audio = { buffers: null, slices: [], sliceListeners: new Set(), replaceListeners: new Set() };
    audio.complete = load().then((buffers) => { audio.buffers = buffers; return buffers; });
    audio.playable = audio.complete;
    return audio;
  }

  function wavBlob(channels, rate) {
    // 32-bit float WAV (format 3): levels above 1 stay as they are.
    const frames = channels[0].length;
    const n = channels.length;
    const data = new DataView(new ArrayBuffer(44 + frames * n * 4));
    const text = (o, s) => [...s].forEach((ch, i) => data.setUint8(o + i, ch.charCodeAt(0)));
    text(0, "RIFF"); data.setUint32(4, 36 + frames * n * 4, true); text(8, "WAVE");
    text(12, "fmt "); data.setUint32(16, 16, true); data.setUint16(20, 3, true);
    data.setUint16(22, n, true); data.setUint32(24, rate, true);
    data.setUint32(28, rate * n * 4, true); data.setUint16(32, n * 4, true);
    data.setUint16(34, 32, true); text(36, "data"); data.setUint32(40, frames * n * 4, true);
    let o = 44;
    for (let i = 0; i < frames; i++) for (let c = 0; c < n; c++, o += 4) data.setFloat32(o, channels[c][i], true);
    return new Blob([data], { type: "audio/wav" });
  }

  // ---------------------------------------------------------------- the audio engine (one per model)
  class Engine {
    constructor(model, audio) {
      this.model = model;
      this.audio = audio; // PcmAudio, or wholeAudio for the offline copy
      this.ctx = null;
      this.buffers = null;
      this.nodes = [];
      this.sources = [];
      this.starts = []; // every start(when, offset) made: what the browser tests read
      this.playing = false;
      this.when = 0;
      this.offset = 0;
      this.paused = model.get("position") || 0;
      this.listeners = new Set();
      this.echo = false;
      this.ready = null;
      this.timer = null;
      for (const key of ["gains", "muted", "soloed", "listen"]) model.on(`change:${key}`, () => this.applyGains());
      model.on("change:playing", () => {
        if (this.echo || model.get("playing") === this.playing) return;
        if (model.get("playing")) this.play(this.position());
        else this.pause();
      });
      model.on("change:position", () => {
        if (!this.echo) this.seek(model.get("position"));
      });
      model.on("change:loop", () => {
        if (!this.echo && this.playing) this.play(this.position());
        this.emit();
      });
    }
    get duration() {
      return this.buffers ? Math.max(...this.buffers.map((b) => b.duration)) : this.model.get("duration");
    }
    prepare() {
      // Resolves once something can be played (the first time slice, or the whole audio).
      if (!this.ready) {
        this.ctx = new AudioContext({ latencyHint: "interactive" });
        this.master = this.ctx.createGain();
        this.master.connect(this.ctx.destination);
        this.nodes = this.model.get("tracks").map(() => {
          const g = this.ctx.createGain();
          g.connect(this.master);
          return g;
        });
        this.applyGains(false);
        this.audio.sliceListeners.add((k) => {
          if (this.playing && this.progressive) this.scheduleSlice(k);
        });
        this.audio.replaceListeners.add((t) => this.swap(t));
        this.audio.complete.then(() => {
          this.buffers = this.audio.buffers; // (a track swapped in meanwhile included)
          // a loop needs whole buffers: start it now if one was asked for meanwhile
          if (this.playing && this.progressive && this.loopSpan()) this.play(this.position());
          this.emit();
        });
        this.ready = this.audio.playable.then(() => this.emit());
      }
      return this.ready;
    }
    complete() {
      // the whole audio as it is now (with any track swapped in since)
      return this.prepare().then(() => this.audio.complete).then(() => this.audio.buffers);
    }
    scales() {
      return this.audio.scales || this.model.get("_scales") || [];
    }
    gainValues() {
      const gains = trackGains(this.model);
      const scales = this.scales();
      return this.model.get("tracks").map((name, i) => (gains[name] ?? 0) * (this.sourceScales ? 1 : scales[i] ?? 1));
    }
    applyGains(ramp = true) {
      if (this.nodes.length) {
        const now = this.ctx.currentTime;
        this.gainValues().forEach((v, i) => {
          const p = this.nodes[i].gain;
          p.cancelScheduledValues(now);
          if (ramp) {
            p.setValueAtTime(p.value, now);
            p.linearRampToValueAtTime(v, now + RAMP_S);
          } else p.setValueAtTime(v, now);
        });
      }
      this.emit();
    }
    loopSpan() {
      const loop = this.model.get("loop") || [];
      return loop.length === 2 ? loop : null;
    }
    now() {
      // The context's clock advances in audio blocks; its output timestamp, carried forward
      // on the page's clock, moves the playhead smoothly.
      const stamp = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : null;
      if (!stamp || !stamp.performanceTime) return this.ctx.currentTime;
      const t = stamp.contextTime + (performance.now() - stamp.performanceTime) / 1000;
      return Math.max(t, this.ctx.currentTime - 0.1);
    }
    position() {
      if (!this.playing) return this.paused;
      let t = this.offset + Math.max(0, this.now() - this.when);
      const loop = this.progressive ? null : this.loopSpan(); // loops start once the audio is whole
      if (loop && t >= loop[1]) t = loop[0] + ((t - loop[0]) % (loop[1] - loop[0]));
      return Math.min(Math.max(0, t), this.duration);
    }
    async play(offset) {
      await this.prepare();
      if (this.ctx.state !== "running") await this.ctx.resume();
      this.stopSources();
      const loop = this.loopSpan();
      if (loop && (offset < loop[0] || offset >= loop[1])) offset = loop[0];
      if (offset >= this.duration - 0.01) offset = 0;
      const when = this.ctx.currentTime + START_AHEAD_S;
      Object.assign(this, { playing: true, when, offset, progressive: !this.buffers });
      if (this.buffers) {
        this.sources = this.buffers.map((buffer, i) => {
          const src = this.ctx.createBufferSource();
          src.buffer = buffer;
          if (loop) Object.assign(src, { loop: true, loopStart: loop[0], loopEnd: loop[1] });
          src.connect(this.nodes[i]);
          src.start(when, offset);
          this.starts.push({ track: i, when, offset });
          return Object.assign(src, { track: i });
        });
        this.endWith(this.sources[0]);
      } else {
        // Still arriving: every slice in so far, back to back; later ones as they come.
        this.audio.slices.forEach((slice, k) => slice && slice.count === this.nodes.length && this.scheduleSlice(k));
      }
      this.sync(true);
      clearInterval(this.timer);
      this.timer = setInterval(() => this.sync(false), POSITION_SYNC_MS);
      this.emit();
    }
    scheduleSlice(k) {
      const sources = startSlice(this.ctx, this.nodes, this.audio, k, this.when, this.offset);
      for (const src of sources) this.starts.push({ track: sources.indexOf(src), when: src.at, offset: src.from, slice: k });
      this.sources.push(...sources);
      const slice = this.audio.slices[k];
      if (sources.length && slice.start + slice.frames >= this.model.get("frames")) this.endWith(sources[0]);
    }
    swap(t) {
      // Track t has new audio: from a moment just ahead, its new source takes over from the
      // old one at the same point of the same clock (the others play on untouched).
      this.buffers = this.audio.buffers;
      if (!this.playing) return this.emit();
      if (this.progressive) return this.play(this.position()); // whole buffers now: restart
      const when = this.ctx.currentTime + START_AHEAD_S;
      let offset = this.offset + (when - this.when);
      const loop = this.loopSpan();
      if (loop && offset >= loop[1]) offset = loop[0] + ((offset - loop[0]) % (loop[1] - loop[0]));
      const gain = this.nodes[t].gain;
      gain.cancelScheduledValues(this.ctx.currentTime);
      gain.setValueAtTime(gain.value, this.ctx.currentTime);
      gain.setValueAtTime(this.gainValues()[t], when); // the new audio's scale, from its start
      const src = this.ctx.createBufferSource();
      src.buffer = this.buffers[t];
      if (loop) Object.assign(src, { loop: true, loopStart: loop[0], loopEnd: loop[1] });
      src.connect(this.nodes[t]);
      if (offset < this.buffers[t].duration) src.start(when, offset);
      this.starts.push({ track: t, when, offset, swap: true });
      const old = this.sources.filter((s) => s.track === t);
      for (const s of old) {
        const ends = !!s.onended;
        s.onended = null;
        try { s.stop(when); } catch (e) { /* never started */ }
        if (ends) this.endWith(src);
      }
      this.sources = [...this.sources.filter((s) => s.track !== t), Object.assign(src, { track: t })];
      this.emit();
    }
    endWith(src) {
      src.onended = () => {
        if (this.sources.includes(src)) this.finish();
      };
    }
    stopSources() {
      for (const src of this.sources) {
        src.onended = null;
        try { src.stop(); } catch (e) { /* never started */ }
        src.disconnect();
      }
      this.sources = [];
    }
    pause() {
      if (!this.playing) return;
      this.paused = this.position();
      this.playing = false;
      this.stopSources();
      clearInterval(this.timer);
      this.sync(true);
      this.emit();
    }
    finish() {
      this.playing = false;
      this.paused = 0;
      this.sources = [];
      clearInterval(this.timer);
      this.sync(true);
      this.emit();
    }
    stop() {
      this.pause();
      this.seek(0);
    }
    seek(t) {
      t = clamp(t, 0, this.duration);
      if (this.playing && t >= this.duration - 0.01) {
        this.pause(); // to the end: stop there, do not start over
        this.paused = this.duration;
        this.sync(true);
        this.emit();
      } else if (this.playing) this.play(t);
      else {
        this.paused = t;
        this.sync(true);
        this.emit();
      }
    }
    sync(now) {
      // Python's mirror of the transport; a set made here is not taken as a command.
      const model = this.model;
      const position = Math.round(this.position() * 1000) / 1000;
      if (!now && position === model.get("position")) return;
      this.echo = true;
      try {
        model.set("position", position);
        model.set("playing", this.playing);
        model.save_changes();
      } finally {
        this.echo = false;
      }
    }
    async render(gains, { slices = false } = {}) {
      // The same graph, offline: what the mixer plays, sample for sample, at the tracks' rate
      // (slices: from the time slices scheduled back to back, as while the audio arrives).
      const buffers = await this.complete();
      const rate = buffers[0].sampleRate;
      const frames = Math.max(...buffers.map((b) => b.length));
      const offline = new OfflineAudioContext(buffers[0].numberOfChannels, frames, rate);
      const values = gains || this.gainValues();
      const nodes = buffers.map((_, i) => {
        const g = offline.createGain();
        g.gain.value = values[i];
        g.connect(offline.destination);
        return g;
      });
      if (slices) this.audio.slices.forEach((_, k) => startSlice(offline, nodes, this.audio, k, 0, 0));
      else buffers.forEach((buffer, i) => {
        const src = offline.createBufferSource();
        src.buffer = buffer;
        src.connect(nodes[i]);
        src.start(0);
      });
      const out = await offline.startRendering();
      return Array.from({ length: out.numberOfChannels }, (_, c) => out.getChannelData(c));
    }
    async download(which) {
      // "remix": what the mixer plays; a track's name: that track as it is.
      const buffers = await this.complete();
      const i = this.model.get("tracks").indexOf(which);
      const scales = this.scales();
      const values = buffers.map((_, j) => (j === i ? (this.sourceScales ? 1 : scales[j] ?? 1) : 0));
      const channels = await this.render(i >= 0 ? values : null);
      const a = h("a", { href: URL.createObjectURL(wavBlob(channels, buffers[0].sampleRate)) });
      a.download = `${which}.wav`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    }
    on(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }
    emit() { for (const listener of this.listeners) listener(); }
  }

  // ---------------------------------------------------------------- tiles (one store per model)
  class Tiles {
    constructor(model, live) {
      this.model = model;
      this.live = live;
      this.byKind = {}; // kind -> track -> [tile], coarse first
      this.gens = []; // per lane: the newest picture's generation (StemPlayer.replace_track)
      this.request = 0;
      this.pending = null;
      this.asked = new Set();
      this.listeners = new Set();
      this.colourCache = new WeakMap();
      for (const tile of model.get("_lanes") || []) this.add(tile, tile.data);
      if (live) model.on("msg:custom", (msg, buffers) => this.receive(msg, buffers));
      model.on("change:_lanes", () => { // the overview, computed after the widget opened
        for (const tile of model.get("_lanes") || []) this.add(tile, tile.data);
        for (const listener of this.listeners) listener();
      });
    }
    add(tile, data) {
      const gen = tile.gen || 0;
      const known = this.gens[tile.track] || 0;
      if (gen < known) return; // a picture of audio since replaced
      if (gen > known) { // new audio or a new mask: its older tiles go
        this.gens[tile.track] = gen;
        for (const perKind of Object.values(this.byKind)) delete perKind[tile.track];
        this.asked.clear();
      }
      const perTrack = (this.byKind[tile.kind] ??= {});
      const list = (perTrack[tile.track] ??= []);
      tile = { ...tile, bytes: tile.image ? null : bytesOf(data) };
      if (list.length && tile.t0 === 0 && tile.t1 >= this.model.get("duration") - 1e-3 && !list[0].sharp) {
        list[0] = tile; // a newer overview of the same kind
      } else list.push(tile);
      tile.sharp = list.length > 1 && list[0] !== tile;
      while (list.length > MAX_SHARP_TILES + 1) list.splice(1, 1);
    }
    receive(msg, buffers) {
      if (!msg || msg.type !== "tiles" || msg.request !== this.request) return;
      msg.tiles.forEach((tile, i) => this.add(tile, buffers[i]));
      this.pending = null;
      for (const listener of this.listeners) listener();
    }
    ask(kind, t0, t1, cols) {
      if (!this.live) return;
      const key = `${kind}:${t0.toFixed(3)}:${t1.toFixed(3)}:${cols}`;
      if (this.asked.has(key)) return; // asked before: the answer is in (or on its way)
      this.asked.add(key);
      this.pending = key;
      this.model.send({ type: "tiles", request: ++this.request, kind, t0, t1, cols });
    }
    list(kind, track) {
      return (this.byKind[kind] || {})[track] || [];
    }
    canvas(tile, luts, dbRange) {
      // A tile coloured for the current dB range (a mask: 0 to 1 through its own colour map);
      // cached until the range changes.
      if (tile.image) return tile.image;
      const linear = tile.scale === "linear";
      const lut = linear ? luts.linear : luts.db;
      if (linear) dbRange = RANGE_DB;
      const cached = this.colourCache.get(tile);
      if (cached && cached.dbRange === dbRange) return cached.canvas;
      const canvas = h("canvas");
      canvas.width = tile.cols;
      canvas.height = tile.rows;
      const g = canvas.getContext("2d");
      const img = g.createImageData(tile.cols, tile.rows);
      const lo = (RANGE_DB - dbRange) * (255 / RANGE_DB);
      const k = 255 / (255 - lo);
      const { rows, cols, bytes } = tile;
      for (let r = 0; r < rows; r++) {
        const y = rows - 1 - r; // lowest frequency at the bottom
        for (let c = 0; c < cols; c++) {
          const q = clamp(Math.round((bytes[r * cols + c] - lo) * k), 0, 255);
          const o = 4 * (y * cols + c);
          img.data[o] = lut[3 * q];
          img.data[o + 1] = lut[3 * q + 1];
          img.data[o + 2] = lut[3 * q + 2];
          img.data[o + 3] = 255;
        }
      }
      g.putImageData(img, 0, 0);
      this.colourCache.set(tile, { dbRange, canvas });
      return canvas;
    }
  }

  // ---------------------------------------------------------------- one view
  const KIND_LABELS = { stft: "spectrogram", mel: "mel", cqt: "CQT", waveform: "waveform" };
  // ids of players with a live widget view on this page (shared by every copy of this script)
  const live = (globalThis.__bandscopeLive ??= new Set());
  const shared = new Map(); // player id -> {engine, audio, tiles}

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
    const choiceLabel = (name) => (name === "remix" ? "remix (mixer)" : name === "mix" ? "original mix" : mixer ? `${name} alone` : name);
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
    for (const name of [...(single || !mixer ? [] : ["remix"]), ...tracks]) downloadSel.append(h("option", { value: name }, `${name}.wav${copyNote}`));
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
      const label = h("span", { class: "bn-name", title: name }, name);
      strip.append(label);
      let mute = null, solo = null, gain = null, gainText = null, hear = null;
      if (mixer && stems.includes(name) && !single) {
        mute = h("button", { class: "bn-mute", title: `mute ${name} (M)` }, "M");
        solo = h("button", { class: "bn-solo", title: `solo ${name} (S)` }, "S");
        gain = h("input", { class: "bn-gain", type: "range", min: "-60", max: "12", step: "0.5", "aria-label": `${name} gain (dB)` });
        gainText = h("span", { class: "bn-db" });
        strip.append(mute, solo, gain, gainText);
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
        hear = h("button", { class: "bn-hear", title: `hear ${name} (A/B: the one heard before)` }, "hear");
        hear.addEventListener("click", () => listenTo(name));
      } else if (!audible) {
        const legend = h("canvas", { class: "bn-legend", width: "64", height: "8", title: "0 (dark) to 1 (bright)" });
        const g = legend.getContext("2d");
        for (let x = 0; x < 64; x++) {
          const q = Math.round((x / 63) * 255);
          g.fillStyle = `rgb(${luts.linear[3 * q]},${luts.linear[3 * q + 1]},${luts.linear[3 * q + 2]})`;
          g.fillRect(x, 0, 1, 8);
        }
        strip.append(h("span", { class: "bn-legend-label" }, "0"), legend, h("span", { class: "bn-legend-label" }, "1"));
      }
      if (hear) strip.append(hear);
      const cell = h("div", { class: "bn-cell" }, canvas, loopBand, head);
      const row = h("div", { class: `bn-row bn-lane${audible ? "" : " bn-picture"}`, "data-track": name }, strip, cell);
      row.addEventListener("pointerdown", () => { selected = i; refreshMixer(); });
      row.addEventListener("focusin", () => { selected = i; refreshMixer(); });
      return { name, index, audible, canvas, head, loopBand, row, mute, solo, gain, gainText, hear, cell, wave: null };
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
        lane.row.classList.toggle("bn-silent", lane.audible && !heard[lane.name]);
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
      if (which) engine.download(which);
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

  // ---------------------------------------------------------------- hosts
  function widgetHost(model) {
    // One engine, tile store and audio per player, however many views it has.
    const id = model.get("_uid");
    if (!shared.has(id)) {
      const audio = new PcmAudio(model);
      const engine = new Engine(model, audio); // the scales ride on the gains
      shared.set(id, { engine, audio, tiles: new Tiles(model, true), standalone: false });
    }
    return shared.get(id);
  }

  const widget = {
    initialize({ model }) {
      const host = widgetHost(model); // listen for the audio before the first chunk is handled
      // Tell the kernel when the browser can play, and when it has all the audio.
      host.audio.playable.then(() => model.send({ type: "playable" }));
      host.audio.complete.then(() => model.send({ type: "complete" }));
    },
    render({ model, el }) {
      const host = widgetHost(model);
      const id = model.get("_uid");
      host.audio.playable.then(() => {
        // This player plays: hide its offline copy (kept for pages without a kernel).
        live.add(id);
        document.querySelectorAll(`.bandscope-offline[data-model-id="${id}"]`).forEach((n) => { n.style.display = "none"; });
      });
      return view(model, el, host);
    },
  };

  // The offline copy: <div class="bandscope-offline"> with a JSON state, one <img> (a coloured
  // spectrogram of the whole track) and one <audio> (Ogg) per track.
  function localModel(state) {
    const listeners = {};
    return {
      get: (key) => state[key],
      set(key, value) {
        state[key] = value;
        for (const f of listeners[`change:${key}`] || []) f();
      },
      on(evt, f) { (listeners[evt] ??= []).push(f); },
      off(evt, f) { listeners[evt] = (listeners[evt] || []).filter((g) => g !== f); },
      save_changes() {},
      send() {},
    };
  }

  function mount(container) {
    const state = JSON.parse(container.querySelector("script.bn-state").textContent);
    const model = localModel(state);
    // in track order (the page lists them in lane order)
    const audios = [...container.querySelectorAll("audio.bn-track")].sort((a, b) => Number(a.dataset.track) - Number(b.dataset.track));
    const images = [...container.querySelectorAll("img.bn-lane-image")];
    // Decoded at the tracks' own rate (an AudioContext would resample to the device's).
    const decoder = new OfflineAudioContext(1, 1, state.sample_rate || 44100);
    const engine = new Engine(model, wholeAudio(() => Promise.all(
      audios.map(async (a) => decoder.decodeAudioData(await (await fetch(a.src)).arrayBuffer())))));
    engine.sourceScales = true; // decoded audio is at its own level
    const tiles = new Tiles(model, false);
    images.forEach((img, i) => tiles.add({ kind: "stft", track: Number(img.dataset.lane ?? i), t0: 0, t1: state.image_t1 ?? state.duration, image: img, freqs: state.freqs }, null));
    const holder = h("div", { class: "bn-upgraded" });
    container.querySelector(".bn-static").style.display = "none";
    container.append(holder);
    const host = { engine, tiles, standalone: true };
    const ready = Promise.all(images.map((img) => (img.complete ? null : new Promise((r) => { img.onload = r; img.onerror = r; }))));
    return ready.then(() => { view(model, holder, host); return holder; });
  }

  function upgrade(container) {
    if (!container || container.dataset.upgraded) return;
    const id = container.dataset.modelId;
    const inLab = !!container.closest(".jp-OutputArea, .jp-Notebook");
    const go = () => {
      if (container.dataset.upgraded) return;
      if (id && live.has(id)) { container.style.display = "none"; return; }
      container.dataset.upgraded = "1";
      mount(container);
    };
    if (inLab) setTimeout(go, 1500); // give a live widget of the same model time to claim it
    else go();
  }

  globalThis.BandscopePlayer = { widget, upgrade, mount, trackGains, live };
})();
