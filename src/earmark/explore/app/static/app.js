// The labelling loop's page. Every text that comes from the server (file names, paths,
// targets, error messages) goes into the page through textContent or an attribute
// setter, never as HTML: a file called "<img onerror=...>.wav" must show as its name.
"use strict";

const VALUES = ["positive", "negative", "skip"];
const state = {
  target: "target",
  labels: new Map(), // key -> label entry from /api/labels (value, name, path, span)
  playing: null,
};

const $ = (id) => document.getElementById(id);

async function api(method, url, body, contentType) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = contentType || "application/json";
    options.body = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(url, options);
  let payload = null;
  try {
    payload = await response.json();
  } catch (error) {
    payload = null;
  }
  if (!response.ok) {
    const message = payload && payload.error ? payload.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return payload;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function say(text) {
  $("status").textContent = text;
}

async function guarded(action) {
  try {
    showError(null);
    await action();
  } catch (error) {
    showError(error);
  }
}

function spanText(clip) {
  if (clip.start_s === null && clip.end_s === null) {
    return `${clip.duration_s.toFixed(2)} s`;
  }
  const start = clip.start_s === null ? 0 : clip.start_s;
  const end = clip.end_s === null ? start + clip.duration_s : clip.end_s;
  return `${start.toFixed(2)}–${end.toFixed(2)} s`;
}

function distanceText(distance) {
  // Float rounding leaves a clip's distance to itself a hair below zero.
  const value = Math.max(0, distance);
  return value < 0.0005 ? value.toExponential(1) : value.toFixed(3);
}

// What a loaded model (earmark serve --model) predicts for a clip.
function modelText(said) {
  if (said.error) {
    return "model: unreadable";
  }
  const score = typeof said.score === "number" ? ` ${said.score.toFixed(2)}` : "";
  return `model: ${said.label}${score}`;
}

function button(text, className, title, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = text;
  element.title = title;
  element.addEventListener("click", onClick);
  return element;
}

// One clip as a list row: play, name, details, and either label buttons or a search button.
function clipRow(clip, detail, { labelling = true, searching = false } = {}) {
  const row = document.createElement("li");
  row.className = "clip";
  row.dataset.key = clip.key;
  row.append(button("▶", "play", `Play ${clip.name}`, () => guarded(() => play(clip))));
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = clip.name;
  name.title = clip.path;
  row.append(name);
  const info = document.createElement("span");
  info.className = "detail";
  info.textContent = detail;
  row.append(info);
  if (clip.model) {
    const said = document.createElement("span");
    said.className = "model-says";
    said.textContent = modelText(clip.model);
    said.title = (clip.model.top_k || []).map((t) => `${t.label} ${t.score.toFixed(2)}`).join(", ");
    row.append(said);
  }
  const actions = document.createElement("span");
  actions.className = "actions";
  if (searching) {
    actions.append(button("find similar", "search", `Search like ${clip.name}`,
      () => guarded(() => searchByKey(clip))));
  }
  if (labelling) {
    for (const value of VALUES) {
      actions.append(button(value, `label label-${value}`, `Label ${clip.name} ${value}`,
        () => guarded(() => setLabel(clip, value))));
    }
  }
  row.append(actions);
  paintRow(row);
  return row;
}

function paintRow(row) {
  const label = state.labels.get(row.dataset.key);
  row.dataset.label = label ? label.value : "";
  for (const value of VALUES) {
    const control = row.querySelector(`.label-${value}`);
    if (control) {
      control.setAttribute("aria-pressed", String(Boolean(label && label.value === value)));
    }
  }
}

function paintAll() {
  for (const row of document.querySelectorAll("li.clip")) {
    paintRow(row);
  }
  const counts = { positive: 0, negative: 0, skip: 0 };
  for (const label of state.labels.values()) {
    counts[label.value] += 1;
  }
  $("counts").textContent =
    `${counts.positive} positive · ${counts.negative} negative · ${counts.skip} skipped`;
  const list = $("labelled");
  list.replaceChildren();
  for (const label of state.labels.values()) {
    const clip = {
      key: label.key, name: label.name, path: label.path,
      start_s: label.start_s, end_s: label.end_s, duration_s: label.duration_s || 0,
    };
    list.append(clipRow(clip, label.value));
  }
}

async function play(clip) {
  const player = $("player");
  let source = `/audio/${encodeURIComponent(clip.key)}`;
  if (clip.start_s !== null || clip.end_s !== null) {
    // A media fragment plays only the clip's span of a longer file.
    source += `#t=${clip.start_s === null ? 0 : clip.start_s}`;
    if (clip.end_s !== null) {
      source += `,${clip.end_s}`;
    }
  }
  player.src = source;
  player.dataset.key = clip.key;
  state.playing = clip.key;
  say(`Playing ${clip.name}`);
  await player.play();
}

async function setLabel(clip, value) {
  const current = state.labels.get(clip.key);
  // Pressing the label a clip already has takes it away again.
  const next = current && current.value === value ? null : value;
  const saved = await api("POST", "/api/labels", { key: clip.key, target: state.target, value: next });
  if (next === null) {
    state.labels.delete(clip.key);
    say(`Removed the label of ${clip.name}`);
  } else {
    saved.duration_s = clip.duration_s;
    state.labels.set(clip.key, saved);
    say(`Labelled ${clip.name} ${next}`);
  }
  paintAll();
}

async function loadLabels() {
  const { labels } = await api("GET", `/api/labels?target=${encodeURIComponent(state.target)}`);
  state.labels = new Map(labels.map((label) => [label.key, label]));
  paintAll();
}

function showHits(result, queryName) {
  $("query").textContent = `${result.hits.length} clips most like ${queryName}`;
  const list = $("results");
  list.replaceChildren();
  for (const hit of result.hits) {
    list.append(clipRow(hit, `${spanText(hit)} · distance ${distanceText(hit.distance)}`));
  }
}

async function searchByKey(clip) {
  say(`Searching like ${clip.name}…`);
  const result = await api("POST", "/api/search", { key: clip.key, k: 10 });
  showHits(result, clip.name);
  say(`Found ${result.hits.length} clips like ${clip.name}`);
}

async function searchByUpload(file) {
  say(`Embedding ${file.name}…`);
  const url = `/api/search-upload?k=10&name=${encodeURIComponent(file.name)}`;
  const result = await api("POST", url, file, "application/octet-stream");
  showHits(result, file.name);
  say(`Found ${result.hits.length} clips like ${file.name}`);
}

let listing = 0;

async function listClips() {
  const text = $("filter").value;
  const ticket = ++listing;
  const { clips } = await api("GET", `/api/clips?limit=50&q=${encodeURIComponent(text)}`);
  if (ticket !== listing) {
    return; // a later keystroke's answer is on its way; this one is stale
  }
  const list = $("clips");
  list.replaceChildren();
  for (const clip of clips) {
    list.append(clipRow(clip, spanText(clip), { labelling: false, searching: true }));
  }
}

async function train() {
  say(`Training a classifier for ${state.target}…`);
  const result = await api("POST", "/api/train", { target: state.target, n: 10 });
  $("model").textContent =
    `Trained on ${result.n_positive} positive and ${result.n_negative} negative clips` +
    (result.n_skipped ? ` (${result.n_skipped} skipped)` : "") +
    `; ${result.uncertain.length} clips the classifier is least sure of:` +
    (result.notes.length ? ` (${result.notes.join("; ")})` : "");
  const list = $("uncertain");
  list.replaceChildren();
  for (const clip of result.uncertain) {
    list.append(clipRow(clip, `${spanText(clip)} · p(positive) ${clip.probability.toFixed(2)}`));
  }
  say(`Trained ${state.target}`);
}

async function chooseTarget(name) {
  // Busy until this target's labels are in, so nothing is labelled against a stale list.
  document.body.dataset.ready = "false";
  try {
    state.target = name.trim() || "target";
    localStorage.setItem("earmark-target", state.target);
    $("uncertain").replaceChildren();
    $("model").textContent = "Label at least one positive and one negative clip, then train.";
    await loadLabels();
    const values = new Set([...state.labels.values()].map((label) => label.value));
    if (values.has("positive") && values.has("negative")) {
      // The classifier is a function of the stored labels: retraining on load brings
      // the queue of uncertain clips back after a reload or a server restart.
      await train();
    }
  } finally {
    document.body.dataset.ready = "true";
  }
}

async function start() {
  const info = await api("GET", "/api/info");
  $("info").textContent =
    `${info.n_clips} clips embedded with ${info.backend} (${info.backend_key})` +
    (info.model ? `; showing a ${info.model.kind} model's predictions (${info.model.classes.length} classes)` : "");
  const options = $("targets");
  options.replaceChildren();
  for (const target of info.targets) {
    const option = document.createElement("option");
    option.value = target;
    options.append(option);
  }
  const remembered = localStorage.getItem("earmark-target") || info.targets[0] || "target";
  $("target").value = remembered;
  await listClips();
  await chooseTarget(remembered);
}

document.addEventListener("DOMContentLoaded", () => {
  $("target").addEventListener("change", (event) => guarded(() => chooseTarget(event.target.value)));
  $("filter").addEventListener("input", () => guarded(listClips));
  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) {
      guarded(() => searchByUpload(file));
    }
  });
  $("train").addEventListener("click", () => guarded(train));
  guarded(start);
});
