// bandscope stem player, part 3 of 5: the lanes' picture tiles (one store per player).

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
