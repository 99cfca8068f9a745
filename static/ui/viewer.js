// The viewer: window/level in the browser on the stored 16-bit values (a lookup table into an ImageData),
// frames fetched once each (decoded by the server, /ui/viewer/instances/{id}/frames/{n}/pixels) and prefetched
// around the current slice, drawing in requestAnimationFrame. DICOM text only ever goes through textContent.
(function () {
  "use strict";
  var root = document.getElementById("viewer");
  var configNode = document.getElementById("viewer-config");
  if (!root || !configNode) return;
  var config = JSON.parse(configNode.textContent);
  var t0 = performance.now();
  var stats = { draws: 0, renders: 0, firstImage: null, firstFrame: null, renderMs: 0 };

  // --- frames: fetched once, shared by the viewports, prefetched nearest first ---------------------------
  var MAX_INFLIGHT = 6;                 // a browser's connections per host over HTTP/1.1
  // Bytes of decoded frames kept (a tablet too); the farthest go first. window.viewerBudget: tests.
  var BUDGET = window.viewerBudget || 512 * 1024 * 1024;
  var frames = new Map();               // "instance/frame" -> {state: loading|ready|error, frame, bytes}
  var inflight = 0, used = 0, typical = 0;   // typical: the size of the last frame, for those in flight
  var viewports = [];

  function key(s) { return s.i + "/" + s.f; }

  function typed(dtype, buffer) {
    switch (dtype) {
      case "uint8": case "rgb8": return new Uint8Array(buffer);
      case "uint16": return new Uint16Array(buffer);
      case "int16": return new Int16Array(buffer);
      case "uint32": return new Uint32Array(buffer);
    }
    throw new Error("unknown sample type " + dtype);
  }

  function load(s) {
    var k = key(s);
    var entry = { state: "loading", frame: null, bytes: 0 };
    frames.set(k, entry);
    inflight++;
    var url = config.pixelsUrl.replace("{id}", encodeURIComponent(s.i)).replace("{frame}", String(s.f));
    fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        return response.text().then(function (text) {
          throw new Error("Cannot show this image: " + (text.slice(0, 200) || "HTTP " + response.status));
        });
      }
      var info = JSON.parse(response.headers.get("X-Viewer-Frame"));
      return response.arrayBuffer().then(function (buffer) {
        info.pixels = typed(info.dtype, buffer);
        info.color = info.dtype === "rgb8";
        entry.frame = info;
        entry.bytes = buffer.byteLength;
        entry.state = "ready";
        used += buffer.byteLength;
        typical = buffer.byteLength;
        if (stats.firstFrame === null) stats.firstFrame = performance.now();
      });
    }).catch(function (error) {
      entry.state = "error";
      entry.error = String(error && error.message || error);
    }).then(function () {
      inflight--;
      viewports.forEach(function (vp) { vp.frameArrived(k); });
      pump();
    });
  }

  // The next frames to fetch: each viewport's current slice, then outward (+1, -1, +2, -2 ...); the active
  // viewport first. A playing cine looks ahead only.
  function pump() {
    if (inflight >= MAX_INFLIGHT) return;
    var order = viewports.filter(function (v) { return v.visible && v.slices.length; });
    order.sort(function (a, b) { return (b === active) - (a === active); });
    // Until the first image is on screen, only the images shown are fetched: the server decodes them first.
    var radius = 0, more = true, limit = stats.firstImage === null ? 1 : Infinity;
    while (inflight < MAX_INFLIGHT && more) {
      more = false;
      for (var n = 0; n < order.length && inflight < MAX_INFLIGHT; n++) {
        var vp = order[n], count = vp.slices.length;
        if (radius >= count || radius >= limit) continue;
        more = true;
        var candidates = vp.playing ? [vp.index + radius] : (radius ? [vp.index + radius, vp.index - radius] : [vp.index]);
        for (var c = 0; c < candidates.length && inflight < MAX_INFLIGHT; c++) {
          var at = vp.playing ? candidates[c] % count : candidates[c];
          if (at < 0 || at >= count) continue;
          var s = vp.slices[at];
          if (!frames.has(key(s))) {
            if (!makeRoom(radius)) return;   // full of nearer frames
            load(s);
          }
        }
      }
      radius++;
    }
  }

  // How far each kept frame is from a slice on screen (the nearest viewport's), in slices.
  function distances() {
    var d = new Map();
    viewports.forEach(function (vp) {
      if (!vp.visible) return;
      for (var n = 0; n < vp.slices.length; n++) {
        var k = key(vp.slices[n]), dist = Math.abs(n - vp.index);
        if (!(d.get(k) <= dist)) d.set(k, dist);
      }
    });
    return d;
  }

  // Room for a frame `distance` slices away from the screen: frames farther than it go, farthest first.
  // False when the budget is full of nearer frames (the prefetch stops there); what is on screen and its
  // neighbours always load.
  function makeRoom(distance) {
    var limit = BUDGET * 0.9 - inflight * typical;
    if (used <= limit) return true;
    var d = distances(), far = [];
    frames.forEach(function (e, k) {
      var dist = d.has(k) ? d.get(k) : Infinity;
      if (e.state === "ready" && dist > distance) far.push([dist, k, e]);
    });
    far.sort(function (a, b) { return b[0] - a[0]; });
    for (var n = 0; n < far.length && used > limit; n++) {
      used -= far[n][2].bytes;
      frames.delete(far[n][1]);
    }
    return used <= limit || distance <= 2;
  }

  // --- windowing -----------------------------------------------------------------------------------------
  // A lookup table from stored value to an opaque grey RGBA word (little-endian ImageData): rescale, window
  // (PS3.3 C.11.2.1.2, linear), MONOCHROME1 and invert folded in; built again only when one of them changes.
  var WHITE = 0xff000000;
  function greyLut(frame, center, width, invert) {
    var low = frame.min, size = frame.max - frame.min + 1;
    var lut = new Uint32Array(size);
    var slope = frame.slope, intercept = frame.intercept;
    var w = Math.max(width, 1e-6), bottom = center - 0.5 - (w - 1) / 2;
    var flip = invert !== !!frame.monochrome1;
    for (var v = 0; v < size; v++) {
      var y = (v + low) * slope + intercept;
      var g = w <= 1 ? (y > center - 0.5 ? 255 : 0) : Math.round(((y - bottom) / (w - 1)) * 255);
      g = g < 0 ? 0 : g > 255 ? 255 : g;
      if (flip) g = 255 - g;
      lut[v] = WHITE | (g << 16) | (g << 8) | g;
    }
    return lut;
  }

  function colourLut(center, width, invert) {
    var lut = new Uint8Array(256), w = Math.max(width, 1e-6), bottom = center - 0.5 - (w - 1) / 2;
    for (var v = 0; v < 256; v++) {
      var g = w <= 1 ? (v > center - 0.5 ? 255 : 0) : Math.round(((v - bottom) / (w - 1)) * 255);
      g = g < 0 ? 0 : g > 255 ? 255 : g;
      lut[v] = invert ? 255 - g : g;
    }
    return lut;
  }

  function applyWindow(frame, image, center, width, invert, cache) {
    var n = frame.columns * frame.rows, px = frame.pixels;
    if (frame.color) {
      var lut8 = colourLut(center, width, invert), out8 = image.data;
      for (var i = 0, j = 0; i < n; i++, j += 3) {
        var o = i << 2;
        out8[o] = lut8[px[j]]; out8[o + 1] = lut8[px[j + 1]]; out8[o + 2] = lut8[px[j + 2]]; out8[o + 3] = 255;
      }
      return;
    }
    var out = new Uint32Array(image.data.buffer);
    var range = frame.max - frame.min;
    if (range > (1 << 22)) {   // a 32-bit frame with a huge range: compute each pixel, no table
      var w = Math.max(width, 1e-6), bottom = center - 0.5 - (w - 1) / 2, flip = invert !== !!frame.monochrome1;
      for (var p = 0; p < n; p++) {
        var g = Math.round((((px[p] * frame.slope + frame.intercept) - bottom) / Math.max(w - 1, 1e-6)) * 255);
        g = g < 0 ? 0 : g > 255 ? 255 : g;
        if (flip) g = 255 - g;
        out[p] = WHITE | (g << 16) | (g << 8) | g;
      }
      return;
    }
    var lutKey = [frame.min, frame.max, frame.slope, frame.intercept, !!frame.monochrome1, center, width, invert].join();
    if (cache.lutKey !== lutKey) { cache.lut = greyLut(frame, center, width, invert); cache.lutKey = lutKey; }
    var lut = cache.lut, low = frame.min;
    for (var q = 0; q < n; q++) out[q] = lut[px[q] - low];
  }

  function defaultWindow(frame) {
    if (frame.color) return [128, 256];   // the identity with the linear function of PS3.3 C.11.2.1.2
    if (frame.windows && frame.windows.length) return [frame.windows[0][0], frame.windows[0][1]];
    return fullRange(frame);
  }

  function fullRange(frame) {
    if (frame.color) return [128, 256];
    var a = frame.min * frame.slope + frame.intercept, b = frame.max * frame.slope + frame.intercept;
    var lo = Math.min(a, b), hi = Math.max(a, b);
    // A flat frame (a segmentation's empty first frame): its value black, anything above it white, rather
    // than a width-1 window centred on it, which shows it white
    if (hi === lo) return [lo + 0.5, 1];
    return [(lo + hi) / 2, Math.max(hi - lo, 1)];
  }

  // The default window was taken from a flat frame, without window tags: the first frame with a range
  // replaces it, unless the window was chosen by hand meanwhile.
  function provisional(frame) {
    return !frame.color && !(frame.windows && frame.windows.length) && frame.min === frame.max;
  }

  // --- a viewport ----------------------------------------------------------------------------------------
  var active = null;
  var tool = "window";
  var fpsInput = document.getElementById("viewer-fps");
  var presetSelect = document.getElementById("viewer-preset");
  var filePresets = document.getElementById("viewer-file-presets");
  var ctPresets = document.getElementById("viewer-ct-presets");

  function Viewport(section) {
    this.section = section;
    this.number = Number(section.dataset.viewport);
    this.stage = section.querySelector(".vp-stage");
    this.canvas = section.querySelector(".vp-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.slider = section.querySelector(".vp-slider");
    this.count = section.querySelector(".vp-count");
    this.status = section.querySelector(".vp-status");
    this.select = section.querySelector(".vp-series");
    this.ov = {};
    var self = this;
    section.querySelectorAll("[data-ov]").forEach(function (el) { self.ov[el.dataset.ov] = el; });
    this.offscreen = document.createElement("canvas");
    this.octx = this.offscreen.getContext("2d");
    this.image = null;
    this.cache = {};
    this.slices = [];
    this.index = 0;
    this.visible = false;
    this.series = null;
    this.window = null;          // [center, width]; null: the series' default once its first frame arrives
    this.invert = false;
    this.fit = true;
    this.scale = 1;
    this.pan = [0, 0];
    this.playing = false;
    this.fps = 10;
    this.lastTick = 0;
    this.drawn = null;           // what the offscreen canvas holds: "key|center|width|invert"
    this.shown = null;           // the frame on screen (the last ready one while the current one loads)
    this.dirty = true;
    this.bind();
  }

  Viewport.prototype.setSeries = function (id, slices) {
    this.series = id;
    this.slices = slices || [];
    this.index = Math.floor(this.slices.length / 2);
    this.fileWindows = [];
    if (this.slices.length && this.slices[0].n > 1 && this.slices.length === this.slices[0].n) this.index = 0;
    this.window = null;
    this.fit = true;
    this.pan = [0, 0];
    this.playing = false;
    this.shown = null;
    this.drawn = null;
    this.select.value = id;
    var overlay = (config.series[id] || {}).overlay || {};
    for (var name in this.ov) if (overlay[name] !== undefined) this.ov[name].textContent = overlay[name];
    this.slider.max = String(Math.max(this.slices.length, 1));
    this.slider.disabled = this.slices.length < 2;
    this.status.textContent = this.slices.length ? "" : "No images in this series.";
    if (this === active) showFilePresets(this);
    this.changed();
    pump();
  };

  Viewport.prototype.loadSeries = function (id) {
    var self = this;
    if (config.slices[id]) { this.setSeries(id, config.slices[id]); return; }
    this.series = id;   // chosen now, so that the next empty viewport takes another one
    this.status.textContent = "Loading…";
    fetch(config.slicesUrl.replace("{id}", encodeURIComponent(id)), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (answer) { config.slices[id] = answer.slices; self.setSeries(id, answer.slices); syncUrl(); })
      .catch(function (e) { self.status.textContent = "Cannot load the series: " + e.message; });
  };

  Viewport.prototype.current = function () {
    var s = this.slices[this.index];
    return s ? frames.get(key(s)) : null;
  };

  Viewport.prototype.go = function (index) {
    var count = this.slices.length;
    if (!count) return;
    index = Math.max(0, Math.min(count - 1, index));
    if (index === this.index) return;
    this.index = index;
    this.changed();
    pump();
  };

  Viewport.prototype.changed = function () { this.dirty = true; schedule(); };

  Viewport.prototype.frameArrived = function (k) {
    var s = this.slices[this.index];
    if (s && key(s) === k) this.changed();
    else if (this.visible) this.updateLoaded();
  };

  Viewport.prototype.updateLoaded = function () {
    var ready = 0, failed = 0;
    for (var n = 0; n < this.slices.length; n++) {
      var e = frames.get(key(this.slices[n]));
      if (e && e.state === "ready") ready++;
      else if (e && e.state === "error") failed++;
    }
    this.ready = ready;
    this.ov.loaded.textContent = ready + failed < this.slices.length ? "Loaded " + ready + "/" + this.slices.length : "";
    this.stage.dataset.loaded = String(ready);
  };

  Viewport.prototype.fitScale = function (frame) {
    return Math.min(this.canvas.width / frame.columns, this.canvas.height / frame.rows);
  };

  Viewport.prototype.render = function () {
    this.dirty = false;
    var started = performance.now();
    var w = Math.max(1, Math.round(this.stage.clientWidth * devicePixelRatio));
    var h = Math.max(1, Math.round(this.stage.clientHeight * devicePixelRatio));
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
    var entry = this.current();
    if (entry && entry.state !== "loading") this.shown = entry.state === "ready" ? entry : null;
    this.stage.dataset.error = entry && entry.state === "error" ? "true" : "false";
    if (entry && entry.state === "error") {
      this.status.textContent = entry.error;
    } else if (this.slices.length) {
      this.status.textContent = entry && entry.state === "ready" ? "" : (this.shown ? "" : "Loading…");
    }
    var ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, h);
    var shown = this.shown && this.shown.state === "ready" ? this.shown : null;
    if (shown) {
      var frame = shown.frame;
      if (!this.window || (this.windowProvisional && !provisional(frame))) {
        if (!this.window) this.presets(frame);
        this.window = defaultWindow(frame);
        this.windowProvisional = provisional(frame);
      }
      if (!this.image || this.image.width !== frame.columns || this.image.height !== frame.rows) {
        this.offscreen.width = frame.columns;
        this.offscreen.height = frame.rows;
        this.image = this.octx.createImageData(frame.columns, frame.rows);
        this.drawn = null;
      }
      var windowed = [this.window[0], this.window[1], this.invert].join("|");
      if (this.drawn !== windowed || this.drawnFrame !== shown) {
        applyWindow(frame, this.image, this.window[0], this.window[1], this.invert, this.cache);
        this.octx.putImageData(this.image, 0, 0);
        this.drawn = windowed;
        this.drawnFrame = shown;
        stats.renders++;
      }
      if (this.fit) this.scale = this.fitScale(frame);
      var x = (w - frame.columns * this.scale) / 2 + this.pan[0], y = (h - frame.rows * this.scale) / 2 + this.pan[1];
      ctx.imageSmoothingEnabled = this.scale < 4;
      ctx.setTransform(this.scale, 0, 0, this.scale, x, y);
      ctx.drawImage(this.offscreen, 0, 0);
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      stats.draws++;
      if (stats.firstImage === null) { stats.firstImage = performance.now(); setTimeout(pump, 0); }
    }
    this.overlay(shown ? shown.frame : null);
    stats.renderMs += performance.now() - started;
  };

  Viewport.prototype.overlay = function (frame) {
    var s = this.slices[this.index], count = this.slices.length;
    this.slider.value = String(this.index + 1);
    this.count.textContent = count ? (this.index + 1) + " / " + count : "";
    var text = count ? "Image " + (this.index + 1) + "/" + count : "";
    if (s && s.n > 1) text += " · frame " + (s.f + 1) + "/" + s.n;
    this.ov.slice.textContent = text;
    // a multi-frame instance's frames have their positions in functional groups, not in the index: none shown
    this.ov.pos.textContent = s && s.n === 1 && s.pos !== null && s.pos !== undefined ? "Position " + s.pos.toFixed(2) + " mm" : "";
    this.ov.window.textContent = this.window ? "W " + fmt(this.window[1]) + " L " + fmt(this.window[0]) + (this.invert ? " · inverted" : "") : "";
    this.ov.zoom.textContent = frame ? "Zoom " + Math.round(this.scale / devicePixelRatio * 100) + "%" : "";
    this.slider.setAttribute("aria-valuetext", text);
    var d = this.stage.dataset;
    d.index = String(this.index);
    d.count = String(count);
    d.ww = this.window ? String(this.window[1]) : "";
    d.wc = this.window ? String(this.window[0]) : "";
    d.scale = String(this.scale);
    d.invert = String(this.invert);
    d.playing = String(this.playing);
    d.ready = this.shown && this.shown === this.current() ? "true" : "false";
    this.updateLoaded();
  };

  function fmt(v) { return Math.abs(v) >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10); }

  Viewport.prototype.presets = function (frame) {
    this.fileWindows = frame.windows || [];
    if (this === active) showFilePresets(this);
  };

  Viewport.prototype.zoomBy = function (factor, cx, cy) {
    var entry = this.shown;
    if (!entry) return;
    var w = this.canvas.width, h = this.canvas.height;
    var old = this.scale, scale = Math.max(0.05, Math.min(40, old * factor));
    // keep the image point under (cx, cy) where it is
    var px = cx === undefined ? w / 2 : cx, py = cy === undefined ? h / 2 : cy;
    var x0 = (w - entry.frame.columns * old) / 2 + this.pan[0], y0 = (h - entry.frame.rows * old) / 2 + this.pan[1];
    var ix = (px - x0) / old, iy = (py - y0) / old;
    this.scale = scale;
    this.fit = false;
    this.pan = [px - ix * scale - (w - entry.frame.columns * scale) / 2, py - iy * scale - (h - entry.frame.rows * scale) / 2];
    this.changed();
  };

  Viewport.prototype.setWindow = function (center, width) {
    this.window = [center, Math.max(width, 1)];
    this.windowProvisional = false;
    this.changed();
  };

  Viewport.prototype.action = function (name) {
    var frame = this.shown && this.shown.frame;
    if (name === "invert") this.invert = !this.invert;
    else if (name === "fit") { this.fit = true; this.pan = [0, 0]; }
    else if (name === "actual") { this.fit = false; this.scale = devicePixelRatio; this.pan = [0, 0]; }
    else if (name === "reset") {
      this.fit = true; this.pan = [0, 0]; this.invert = false;
      this.window = frame ? defaultWindow(frame) : null;
      this.windowProvisional = !!frame && provisional(frame);
    } else if (name === "play") this.setPlaying(!this.playing);
    this.changed();
    syncToolbar();
  };

  Viewport.prototype.setPlaying = function (on) {
    this.playing = on && this.slices.length > 1;
    if (this.playing) {
      var s = this.slices[this.index], entry = s && frames.get(key(s));
      if (entry && entry.frame && entry.frame.frameMs && !this.fpsChosen) this.fps = Math.max(1, Math.min(60, Math.round(1000 / entry.frame.frameMs)));
      this.lastTick = performance.now();
    }
    this.changed();
    syncToolbar();
    pump();
  };

  Viewport.prototype.tick = function (now) {
    if (!this.playing) return;
    if (now - this.lastTick < 1000 / this.fps) return;
    var next = (this.index + 1) % this.slices.length;
    var entry = frames.get(key(this.slices[next]));
    if (!entry || entry.state === "loading") return;   // wait for it rather than skip
    this.lastTick = now - Math.min(now - this.lastTick - 1000 / this.fps, 1000 / this.fps);
    this.index = next;
    this.dirty = true;
    pump();
  };

  Viewport.prototype.bind = function () {
    var self = this, stage = this.stage;
    var wheelRest = 0;
    stage.addEventListener("wheel", function (event) {
      event.preventDefault();
      activate(self);
      if (event.ctrlKey) {   // pinch on a touchpad, or Ctrl+wheel
        var r = self.canvas.getBoundingClientRect();
        self.zoomBy(Math.exp(-event.deltaY * 0.002), (event.clientX - r.left) * devicePixelRatio, (event.clientY - r.top) * devicePixelRatio);
        return;
      }
      var delta = event.deltaMode === 1 ? event.deltaY * 33 : event.deltaMode === 2 ? event.deltaY * 400 : event.deltaY;
      // a mouse wheel notch (~100 pixels) is one slice; a touchpad's small deltas add up to one
      wheelRest = Math.abs(delta) >= 50 ? delta : wheelRest + delta;
      if (Math.abs(wheelRest) >= 50) { self.go(self.index + Math.sign(wheelRest)); wheelRest = 0; }
    }, { passive: false });

    var drag = null;
    stage.addEventListener("contextmenu", function (event) { event.preventDefault(); });
    stage.addEventListener("pointerdown", function (event) {
      activate(self);
      stage.focus({ preventScroll: true });
      var mode = event.button === 1 ? "pan" : event.button === 2 ? "zoom" : tool;
      drag = { mode: mode, x: event.clientX, y: event.clientY, id: event.pointerId };
      stage.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    stage.addEventListener("pointermove", function (event) {
      if (!drag || event.pointerId !== drag.id) return;
      var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      drag.x = event.clientX; drag.y = event.clientY;
      if (!dx && !dy) return;
      if (drag.mode === "window") {
        var frame = self.shown && self.shown.frame;
        if (!frame || !self.window) return;
        var range = frame.color ? 256 : Math.abs((frame.max - frame.min) * frame.slope) || 256;
        var step = Math.max(range / 1024, frame.color ? 1 : 0.05);
        self.setWindow(self.window[0] + dy * step, self.window[1] + dx * step);
      } else if (drag.mode === "pan") {
        self.fit = false;
        self.pan = [self.pan[0] + dx * devicePixelRatio, self.pan[1] + dy * devicePixelRatio];
        self.changed();
      } else if (drag.mode === "zoom") {
        self.zoomBy(Math.exp(-dy * 0.01));
      }
    });
    function end(event) { if (drag && event.pointerId === drag.id) drag = null; }
    stage.addEventListener("pointerup", end);
    stage.addEventListener("pointercancel", end);

    stage.addEventListener("keydown", function (event) {
      if (event.altKey || event.metaKey || event.ctrlKey) return;
      var k = event.key, handled = true;
      if (k === "ArrowDown" || k === "ArrowRight") self.go(self.index + 1);
      else if (k === "ArrowUp" || k === "ArrowLeft") self.go(self.index - 1);
      else if (k === "PageDown") self.go(self.index + 10);
      else if (k === "PageUp") self.go(self.index - 10);
      else if (k === "Home") self.go(0);
      else if (k === "End") self.go(self.slices.length - 1);
      else if (k === "+" || k === "=") self.zoomBy(1.25);
      else if (k === "-") self.zoomBy(0.8);
      else if (k === "i" || k === "I") self.action("invert");
      else if (k === "f" || k === "F") self.action("fit");
      else if (k === "1") self.action("actual");
      else if (k === "r" || k === "R") self.action("reset");
      else if (k === "p" || k === "P" || k === " ") self.action("play");
      else handled = false;
      if (handled) event.preventDefault();
    });
    stage.addEventListener("focus", function () { activate(self); });

    this.slider.addEventListener("input", function () { activate(self); self.go(Number(self.slider.value) - 1); });
    this.select.addEventListener("change", function () { activate(self); self.loadSeries(self.select.value); syncUrl(); });
    new ResizeObserver(function () { self.changed(); }).observe(stage);
  };

  // --- toolbar, layout, loop -----------------------------------------------------------------------------
  function activate(vp) {
    if (active === vp) return;
    if (active) active.section.classList.remove("active");
    active = vp;
    vp.section.classList.add("active");
    showFilePresets(vp);
    syncToolbar();
    pump();
  }

  function showFilePresets(vp) {
    // Hounsfield windows mean nothing on other modalities (an MR's values are arbitrary units)
    ctPresets.disabled = ((config.series[vp.series] || {}).modality || "") !== "CT";
    while (filePresets.firstChild) filePresets.removeChild(filePresets.firstChild);
    (vp.fileWindows || []).forEach(function (w, n) {
      var option = document.createElement("option");
      option.value = w[0] + "," + w[1];
      option.textContent = (w[2] || "Window " + (n + 1)) + " (W " + fmt(w[1]) + " L " + fmt(w[0]) + ")";
      filePresets.appendChild(option);
    });
    filePresets.disabled = !filePresets.firstChild;
  }

  function syncToolbar() {
    root.querySelectorAll("[data-tool]").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.tool === tool)); });
    root.querySelectorAll("[data-layout]").forEach(function (b) {
      if (b.tagName === "BUTTON") b.setAttribute("aria-pressed", String(b.dataset.layout === root.dataset.layout));
    });
    var invert = root.querySelector("[data-action=invert]"), play = root.querySelector("[data-action=play]");
    invert.setAttribute("aria-pressed", String(!!(active && active.invert)));
    play.setAttribute("aria-pressed", String(!!(active && active.playing)));
    play.textContent = active && active.playing ? "Pause" : "Play";
    if (active && document.activeElement !== fpsInput) fpsInput.value = String(active.fps);
  }

  function syncUrl() {
    var query = viewports.filter(function (v) { return v.visible && v.series; })
      .map(function (v) { return "series=" + encodeURIComponent(v.series); });
    query.push("layout=" + root.dataset.layout);
    history.replaceState(null, "", location.pathname + "?" + query.join("&"));
  }

  var COUNTS = { "1x1": 1, "1x2": 2, "2x2": 4 };
  function setLayout(layout) {
    var count = COUNTS[layout] || 1;
    root.dataset.layout = layout;
    root.querySelector(".viewports").dataset.count = String(count);
    var order = Object.keys(config.series);
    viewports.forEach(function (vp, n) {
      vp.visible = n < count;
      vp.section.hidden = !vp.visible;
      if (vp.visible && !vp.series) {
        // an empty viewport takes a series not shown yet, else the first one again
        var shown = viewports.filter(function (v) { return v.series; }).map(function (v) { return v.series; });
        var next = order.filter(function (id) { return shown.indexOf(id) < 0; })[0] || config.selected[0];
        vp.loadSeries(next);
      }
      if (!vp.visible) vp.playing = false;
      vp.changed();
    });
    if (!active || !active.visible) activate(viewports[0]);
    syncToolbar();
    syncUrl();
    pump();
  }

  var scheduled = false;
  function schedule() { if (!scheduled) { scheduled = true; requestAnimationFrame(loop); } }
  function loop(now) {
    scheduled = false;
    var again = false;
    viewports.forEach(function (vp) {
      if (!vp.visible) return;
      vp.tick(now);
      if (vp.dirty) vp.render();
      if (vp.playing) again = true;
    });
    if (again) schedule();
  }

  root.querySelector(".viewer-toolbar").hidden = false;
  root.querySelectorAll(".viewport").forEach(function (section) { viewports.push(new Viewport(section)); });
  root.querySelectorAll("button[data-layout]").forEach(function (b) {
    b.addEventListener("click", function () { setLayout(b.dataset.layout); });
  });
  root.querySelectorAll("[data-tool]").forEach(function (b) {
    b.addEventListener("click", function () { tool = b.dataset.tool; syncToolbar(); });
  });
  root.querySelectorAll("[data-action]").forEach(function (b) {
    b.addEventListener("click", function () { if (active) active.action(b.dataset.action); });
  });
  presetSelect.addEventListener("change", function () {
    var value = presetSelect.value;
    if (!active || !value) return;
    var frame = active.shown && active.shown.frame;
    if (value === "auto") { if (frame) { var r = fullRange(frame); active.setWindow(r[0], r[1]); } }
    else { var cw = value.split(","); active.setWindow(Number(cw[0]), Number(cw[1])); }
    presetSelect.value = "";
  });
  fpsInput.addEventListener("input", function () {
    var fps = Number(fpsInput.value);
    if (active && fps >= 1 && fps <= 60) { active.fps = fps; active.fpsChosen = true; }
  });
  document.addEventListener("keydown", function (event) {
    // W, Z and D pick the drag tool from anywhere but a field
    if (event.target.closest && event.target.closest("input, select, textarea")) return;
    if (event.altKey || event.metaKey || event.ctrlKey) return;
    var tools = { w: "window", d: "pan", z: "zoom" };
    if (tools[event.key]) { tool = tools[event.key]; syncToolbar(); }
  });

  config.selected.forEach(function (id, n) { if (viewports[n]) viewports[n].setSeries(id, config.slices[id]); });
  activate(viewports[0]);
  setLayout(root.dataset.layout);

  window.viewer = { stats: stats, viewports: viewports, frames: frames, started: t0 };
})();
