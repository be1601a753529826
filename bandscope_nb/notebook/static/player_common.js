// bandscope stem player, part 1 of 5: constants, DOM and time helpers, and what each track's
// gain is for a mixer state. player.py's player_script() joins the parts, in the order of
// PARTS, inside one function scope.
//
// The player: Web Audio mixer, transport and spectrogram lanes, in two hosts. As an anywidget
// module (Python appends `export default BandscopePlayer.widget`) the state lives in the
// widget model and audio arrives as 16-bit PCM buffers. In an offline page
// (StemPlayer.save_html, a notebook's offline copy, an nbconvert export)
// `BandscopePlayer.upgrade(element)` reads the page's own <audio> and <img> elements into a
// local model with the same interface. Either way: every track is
// AudioBufferSourceNode -> GainNode -> master on one AudioContext, every source of a play starts
// with one start(when, offset), and mixer changes are gain ramps (MDN: "Web Audio API best
// practices", AudioParam.linearRampToValueAtTime).
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

