// One file's detections: a lane per class, each event a box; wheel or buttons zoom,
// dragging pans, clicking an event plays that stretch of the recording and stops at its
// end. Everything the page needs is in the page: no network, no library.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("detections").textContent);
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("timeline");
  const player = document.getElementById("player");
  const GUTTER = 170, LANE = 26, AXIS = 24, MIN_SPAN = 0.5;
  const TICK_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
                      3600, 7200, 10800, 21600, 43200];
  const duration = Math.max(data.duration_s, MIN_SPAN);
  const view = { start: 0, end: duration };
  let stopAt = null, watch = null, playingIndex = null;

  // Seconds on a short file; a clock (0:45:00) on a long one, tenths when zoomed in.
  function clock(seconds, step) {
    if (duration < 120) return `${+seconds.toFixed(2)} s`;
    const tenths = step !== undefined && step < 1;
    const total = tenths ? Math.round(seconds * 10) / 10 : Math.round(seconds);
    const whole = Math.floor(total), h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60), s = whole % 60;
    const mm = String(m).padStart(2, "0");
    const ss = String(s).padStart(2, "0") + (tenths ? `.${Math.round((total - whole) * 10)}` : "");
    return duration >= 3600 ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  function element(name, attributes, parent) {
    const node = document.createElementNS(svgNS, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  const height = AXIS + LANE * data.classes.length + 4;
  svg.setAttribute("height", height);
  const ticks = element("g", {}, svg);
  const lanes = element("g", {}, svg);
  data.classes.forEach((label, row) => {
    const g = element("g", { class: "lane", "data-label": label }, lanes);
    if (row % 2) element("rect", { class: "stripe", x: 0, y: AXIS + row * LANE,
                                   width: "100%", height: LANE }, g);
    const name = element("text", { class: "lane-name", x: 6, y: AXIS + (row + 0.5) * LANE,
                                   fill: data.colours[row] }, g);
    name.textContent = `${label} (${data.counts[row]})`;
  });
  const boxes = element("g", {}, svg);
  const rects = data.events.map(([row, onset, offset, score], index) => {
    const rect = element("rect", { class: "event", y: AXIS + row * LANE + 3, height: LANE - 6,
                                   fill: data.colours[row], "data-index": index }, boxes);
    const title = element("title", {}, rect);
    title.textContent = `${data.classes[row]}: ${onset.toFixed(2)}–${offset.toFixed(2)} s` +
      (score === null ? "" : ` (score ${score.toFixed(3)})`);
    return rect;
  });
  const cursor = element("line", { class: "cursor", y1: AXIS, y2: height, visibility: "hidden" }, svg);

  function width() { return Math.max(svg.clientWidth - GUTTER - 30, 50); }
  function x(seconds) { return GUTTER + (seconds - view.start) / (view.end - view.start) * width(); }
  function timeAt(clientX) {
    const left = svg.getBoundingClientRect().left + GUTTER;
    return view.start + (clientX - left) / width() * (view.end - view.start);
  }

  function render() {
    const span = view.end - view.start;
    const step = TICK_STEPS.find((s) => span / s <= 10) || TICK_STEPS[TICK_STEPS.length - 1];
    ticks.replaceChildren();
    for (let t = Math.ceil(view.start / step) * step; t <= view.end + 1e-9; t += step) {
      const g = element("g", { class: "tick" }, ticks);
      element("line", { x1: x(t), x2: x(t), y1: AXIS - 4, y2: height }, g);
      element("text", { x: x(t), y: AXIS - 8 }, g).textContent = clock(t, step);
    }
    data.events.forEach(([, onset, offset], index) => {
      const rect = rects[index];
      const visible = offset >= view.start && onset <= view.end;
      rect.style.display = visible ? "" : "none";
      if (!visible) return;
      const left = Math.max(x(onset), GUTTER);
      const right = Math.min(x(offset), GUTTER + width());
      rect.setAttribute("x", left);
      rect.setAttribute("width", Math.max(right - left, 2));  // never thinner than 2 px
    });
    svg.dataset.start = view.start;
    svg.dataset.end = view.end;
    document.getElementById("range").textContent =
      `${clock(view.start, 0.1)} – ${clock(view.end, 0.1)}`;
    moveCursor();
  }

  function setView(start, end) {
    let span = Math.min(Math.max(end - start, MIN_SPAN), duration);
    start = Math.min(Math.max(start, 0), duration - span);
    view.start = start;
    view.end = start + span;
    render();
  }

  function zoom(factor, centre) {
    const span = view.end - view.start;
    const at = centre === undefined ? view.start + span / 2 : centre;
    const share = (at - view.start) / span;
    const next = span * factor;
    setView(at - share * next, at - share * next + next);
  }

  function moveCursor() {
    const t = player.currentTime;
    const shown = !player.paused && t >= view.start && t <= view.end;
    cursor.setAttribute("visibility", shown ? "visible" : "hidden");
    if (shown) { cursor.setAttribute("x1", x(t)); cursor.setAttribute("x2", x(t)); }
  }

  function mark(index) {
    document.querySelectorAll(".playing").forEach((node) => node.classList.remove("playing"));
    playingIndex = index;
    if (index === null) return;
    rects[index].classList.add("playing");
    const row = document.querySelector(`#events tr[data-index="${index}"]`);
    if (row) row.classList.add("playing");
  }

  function check() {
    moveCursor();
    if (stopAt !== null && player.currentTime >= stopAt) {
      player.pause();
      stopAt = null;
    }
  }

  function play(index) {
    const [, onset, offset] = data.events[index];
    stopAt = offset;
    mark(index);
    player.currentTime = onset;
    const started = player.play();
    if (started && started.catch) started.catch(() => {});
  }

  player.addEventListener("play", () => {
    clearInterval(watch);
    // timeupdate comes every quarter second or so; an event's end needs a finer watch.
    watch = setInterval(check, 15);
  });
  player.addEventListener("pause", () => {
    clearInterval(watch);
    moveCursor();
    player.dataset.stoppedAt = player.currentTime;
  });
  player.addEventListener("seeking", () => {
    // A seek by hand (the audio controls) ends an event's playback.
    if (stopAt !== null && playingIndex !== null) {
      const [, onset, offset] = data.events[playingIndex];
      if (player.currentTime < onset - 0.05 || player.currentTime > offset) stopAt = null;
    }
  });
  player.addEventListener("error", () => {
    document.getElementById("audio-error").textContent =
      `The recording could not be opened from ${data.audio}; these pages find it by its ` +
      "path relative to the page, so keep the output folder where it was written.";
  });

  boxes.addEventListener("click", (event) => {
    const index = event.target.dataset.index;
    if (index !== undefined) play(Number(index));
  });
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const centre = Math.min(Math.max(timeAt(event.clientX), view.start), view.end);
    zoom(event.deltaY > 0 ? 1.25 : 0.8, centre);
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.target.classList.contains("event")) return;
    drag = { x: event.clientX, start: view.start, end: view.end };
    svg.classList.add("dragging");
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const shift = (event.clientX - drag.x) / width() * (drag.end - drag.start);
    setView(drag.start - shift, drag.end - shift);
  });
  const endDrag = () => { drag = null; svg.classList.remove("dragging"); };
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2));
  document.getElementById("reset").addEventListener("click", () => setView(0, duration));
  window.addEventListener("resize", render);

  // The table: every event, in time order, each row playing its event too.
  const body = document.querySelector("#events tbody");
  data.events.forEach(([row, onset, offset, score], index) => {
    const tr = document.createElement("tr");
    tr.dataset.index = index;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "▶";
    button.title = "play this event";
    button.addEventListener("click", () => play(index));
    const name = document.createElement("td");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = data.colours[row];
    name.append(swatch, data.classes[row]);
    const cells = [onset.toFixed(3), offset.toFixed(3), score === null ? "" : score.toFixed(3)];
    const first = document.createElement("td");
    first.appendChild(button);
    tr.append(first, name);
    for (const text of cells) {
      const td = document.createElement("td");
      td.className = "number";
      td.textContent = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  });

  render();
  document.body.dataset.ready = "true";
})();
