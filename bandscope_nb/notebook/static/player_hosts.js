// bandscope stem player, part 5 of 5: the hosts (the anywidget widget, the offline copy).

  // ---------------------------------------------------------------- hosts
  // ids of players with a live widget view on this page (shared by every copy of this script)
  const live = (globalThis.__bandscopeLive ??= new Set());
  const shared = new Map(); // player id -> {engine, audio, tiles}
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
