// bandscope stem player, part 2 of 5: the audio (PCM from the kernel, or decoded whole) and
// the engine that plays it (one AudioContext per player).

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
      this.whole = [];
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
      this.whole[t] = next;
      // One change (StemPlayer.change) swaps all its tracks in at one moment: wait for them.
      const batch = msg.batch || [t];
      if (!batch.every((i) => this.whole[i])) return;
      const swaps = batch.map((i) => [i, this.whole[i]]);
      for (const i of batch) this.whole[i] = null;
      this.complete.then(() => {
        const fresh = swaps.filter(([i, next]) => this.gens[i] === next.gen); // none newer came
        if (!fresh.length) return;
        const swapped = new Map(fresh);
        this.buffers = this.buffers.map((b, i) => (swapped.has(i) ? swapped.get(i).buffer : b));
        for (const [i, next] of fresh) this.scales[i] = next.scale;
        for (const listener of this.replaceListeners) listener(fresh.map(([i]) => i));
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
        this.audio.replaceListeners.add((tracks) => this.swap(tracks));
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
        this.sources = this.buffers.map((_, i) => this.startSource(i, when, offset, loop));
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
    swap(tracks) {
      // These tracks have new audio: from one moment just ahead, their new sources take over
      // from the old ones at the same point of the same clock (the others play on untouched).
      this.buffers = this.audio.buffers;
      if (!this.playing) return this.emit();
      if (this.progressive) return this.play(this.position()); // whole buffers now: restart
      const when = this.ctx.currentTime + START_AHEAD_S;
      let offset = this.offset + (when - this.when);
      const loop = this.loopSpan();
      if (loop && offset >= loop[1]) offset = loop[0] + ((offset - loop[0]) % (loop[1] - loop[0]));
      for (const t of tracks) this.swapSource(t, when, offset, loop);
      this.emit();
    }
    swapSource(t, when, offset, loop) {
      const gain = this.nodes[t].gain;
      gain.cancelScheduledValues(this.ctx.currentTime);
      gain.setValueAtTime(gain.value, this.ctx.currentTime);
      gain.setValueAtTime(this.gainValues()[t], when); // the new audio's scale, from its start
      const src = this.startSource(t, when, offset, loop, { swap: true });
      const old = this.sources.filter((s) => s.track === t);
      for (const s of old) {
        const ends = !!s.onended;
        s.onended = null;
        try { s.stop(when); } catch (e) { /* never started */ }
        if (ends) this.endWith(src);
      }
      this.sources = [...this.sources.filter((s) => s.track !== t), src];
    }
    startSource(t, when, offset, loop, note = {}) {
      // Track t's whole buffer from `offset` at `when` (over `loop` when given), recorded in
      // `starts` (what the browser tests read).
      const src = this.ctx.createBufferSource();
      src.buffer = this.buffers[t];
      if (loop) Object.assign(src, { loop: true, loopStart: loop[0], loopEnd: loop[1] });
      src.connect(this.nodes[t]);
      if (offset < src.buffer.duration) src.start(when, offset);
      this.starts.push({ track: t, when, offset, ...note });
      return Object.assign(src, { track: t });
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
    async download(which, fileName = `${which}.wav`) {
      // "remix": what the mixer plays; a track's name: that track as it is.
      const buffers = await this.complete();
      const i = this.model.get("tracks").indexOf(which);
      const scales = this.scales();
      const values = buffers.map((_, j) => (j === i ? (this.sourceScales ? 1 : scales[j] ?? 1) : 0));
      const channels = await this.render(i >= 0 ? values : null);
      const a = h("a", { href: URL.createObjectURL(wavBlob(channels, buffers[0].sampleRate)) });
      a.download = fileName;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    }
    on(listener) { this.listeners.add(listener); return () => this.listeners.delete(listener); }
    emit() { for (const listener of this.listeners) listener(); }
  }
