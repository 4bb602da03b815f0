// The web page of musicgen-ft serve: sign in, new training, training page, result, list.
// It speaks only the server's own API (the same one the official client uses), with the
// session cookie set at sign-in; state lives in the URL hash, so a reload keeps the page.
"use strict";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const TERMINAL = ["succeeded", "failed", "canceled"];
let timer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function say(text, bad = false) {
  notice.textContent = text;
  notice.className = bad ? "error" : "";
}

async function api(method, path, body, headers = {}) {
  const init = { method, credentials: "same-origin",
    headers: { "X-Requested-With": "musicgen-ft", ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail || `${method} ${path}: HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

// --- sign in -------------------------------------------------------------------------------

function showSignIn(message) {
  document.getElementById("nav").hidden = true;
  const token = el("input", { type: "password", id: "token", name: "token", required: true,
    autocomplete: "current-password" });
  const form = el("form", { "aria-labelledby": "sign-in-title" },
    el("h2", { id: "sign-in-title", text: "Sign in" }),
    el("label", { for: "token", text: "Token" }), token,
    el("span", { class: "help", text: "One of the tokens the server was started with." }),
    el("button", { type: "submit", text: "Sign in" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/ui/session", { token: token.value });
      token.value = "";
      say("");
      route();
    } catch (error) {
      say(error.message, true);
      token.focus();
    }
  });
  main.replaceChildren(form);
  if (message) say(message, true);
  token.focus();
}

// --- new training --------------------------------------------------------------------------

async function trainer() {
  const models = await api("GET", "/v1/models");
  const model = models.results[0];
  return { model, version: model.latest_version };
}

function field(name, spec, required) {
  const id = `in-${name}`;
  const help = el("span", { class: "help", id: `${id}-help`, text: spec.description || "" });
  const attrs = { id, name, "aria-describedby": `${id}-help` };
  let input;
  const choices = spec.enum || (spec.allOf && spec.allOf[0] && spec.allOf[0].enum);
  if (choices) {
    input = el("select", attrs, ...choices.map((c) =>
      el("option", { value: c, text: c, selected: c === spec.default })));
  } else if (spec.type === "boolean") {
    input = el("input", { ...attrs, type: "checkbox", checked: spec.default === true });
  } else if (spec.type === "integer" || spec.type === "number") {
    input = el("input", { ...attrs, type: "number", value: spec.default,
      min: spec.minimum, max: spec.maximum, step: spec.type === "integer" ? 1 : "any" });
  } else {
    input = el("input", { ...attrs, type: "text", value: spec.default ?? "",
      maxlength: spec.maxLength, required: required || undefined });
  }
  const label = el("label", { for: id, text: spec.title || name });
  return el("div", {}, label, input, help);
}

function readForm(form, properties) {
  const input = {};
  for (const [name, spec] of Object.entries(properties)) {
    const node = form.elements.namedItem(name);
    if (!node) continue;
    if (node.type === "checkbox") input[name] = node.checked;
    else if (node.value === "") continue;
    else if (spec.type === "integer") input[name] = parseInt(node.value, 10);
    else if (spec.type === "number") input[name] = parseFloat(node.value);
    else input[name] = node.value;
  }
  return input;
}

function upload(blob, filename, bar) {
  // XMLHttpRequest, for its upload progress events.
  return new Promise((resolve, reject) => {
    const body = new FormData();
    body.append("content", blob, filename);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/files");
    xhr.setRequestHeader("X-Requested-With", "musicgen-ft");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) { bar.max = event.total; bar.value = event.loaded; }
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new Error(data.detail || `upload failed: HTTP ${xhr.status}`));
    });
    xhr.addEventListener("error", () => reject(new Error("upload failed: network error")));
    xhr.send(body);
  });
}

async function ensureModel(ref) {
  const [owner, name] = ref.split("/");
  try {
    await api("GET", `/v1/models/${owner}/${name}`);
  } catch (error) {
    if (error.status !== 404) throw error;
    await api("POST", "/v1/models", { owner, name, visibility: "private", hardware: "gpu" });
  }
}

// --- label review ----------------------------------------------------------------------

const LABEL_COLUMNS = ["source", "chunk_id", "key", "scale", "bpm", "genres", "moods",
  "instruments", "description"];

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function labelTable(files) {
  const head = el("tr", {}, ...["File", "Key", "Scale", "BPM", "Genres", "Moods", "Instruments",
    "Description"].map((t) => el("th", { scope: "col", text: t })));
  const rows = files.map((f) => {
    const cell = (key, value, attrs = {}) => el("td", {}, el("input", { type: "text",
      "data-key": key, value: value ?? "", "aria-label": `${key} of ${f.source}`, ...attrs }));
    const scale = el("select", { "data-key": "scale", "aria-label": `scale of ${f.source}` },
      ...["", "major", "minor"].map((v) => el("option", { value: v, text: v || "—",
        selected: v === (f.scale || "") })));
    return el("tr", { "data-source": f.source }, el("th", { scope: "row", text: f.source }),
      cell("key", f.key, { size: 3 }), el("td", {}, scale),
      cell("bpm", f.bpm === null || f.bpm === undefined ? "" : Math.round(f.bpm), { size: 4 }),
      cell("genres", (f.genres || []).join("; ")), cell("moods", (f.moods || []).join("; ")),
      cell("instruments", (f.instruments || []).join("; ")),
      cell("description", f.description));
  });
  return el("table", { id: "labels" }, el("caption", { text: "Automatic labels: edit any cell" }),
    head, ...rows);
}

function labelsCsv(table) {
  const lines = [LABEL_COLUMNS.join(",")];
  for (const tr of table.querySelectorAll("tr[data-source]")) {
    const value = (key) => { const n = tr.querySelector(`[data-key=${key}]`); return n ? n.value : ""; };
    lines.push(LABEL_COLUMNS.map((c) => csvCell(c === "source" ? tr.dataset.source
      : c === "chunk_id" ? "" : value(c))).join(","));
  }
  return lines.join("\n") + "\n";
}

async function reviewLabels(datasetUrl, box, labelsField) {
  say("Labelling the dataset…");
  let job = await api("POST", "/v1/labels", { dataset_path: datasetUrl });
  while (job.status === "processing") {
    await new Promise((r) => setTimeout(r, 1000));
    job = await api("GET", `/v1/labels/${job.id}`);
  }
  if (job.status !== "succeeded") throw new Error(job.error || "labelling failed");
  const table = labelTable(job.files);
  const save = el("button", { type: "button", text: "Save labels" });
  save.addEventListener("click", async () => {
    try {
      const blob = new Blob([labelsCsv(table)], { type: "text/csv" });
      const file = await upload(blob, "labels.csv", el("progress"));
      labelsField.value = file.urls.get;
      say("Labels saved: the training will use them (labels_file).");
    } catch (error) {
      say(error.message, true);
    }
  });
  box.replaceChildren(table, save, ...(job.notes || []).map((n) => el("p", { class: "help", text: n })));
  say("");
}

async function showNew() {
  const { model, version } = await trainer();
  const schema = version.openapi_schema.components.schemas.TrainingInput;
  const properties = schema.properties;
  const required = new Set(schema.required || []);
  const dataset = el("input", { type: "file", id: "dataset", name: "dataset",
    accept: ".zip,.tar,.tar.gz,.tgz,audio/*", "aria-describedby": "dataset-help" });
  const folder = el("input", { type: "file", id: "dataset-folder", webkitdirectory: true,
    multiple: true });
  const url = el("input", { type: "url", id: "dataset-url", name: "dataset_path",
    placeholder: "https://…/songs.zip" });
  const destination = el("input", { type: "text", id: "destination", name: "destination",
    required: true, value: "me/my-musicgen", pattern: "[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*" });
  const bar = el("progress", { id: "upload-progress", max: 1, value: 0,
    "aria-label": "Upload progress" });
  const options = el("fieldset", {}, el("legend", { text: "Training inputs" }),
    ...Object.entries(properties)
      .filter(([name]) => name !== "dataset_path")
      .map(([name, spec]) => field(name, spec, required.has(name))));
  const start = el("button", { type: "submit", text: "Start training" });
  const review = el("button", { type: "button", class: "secondary", text: "Review labels" });
  const reviewBox = el("div", { id: "label-review" });
  let uploaded = null; // {file, url}: one upload serves the review and the training
  async function datasetUrl() {
    if (dataset.files.length) {
      if (!uploaded || uploaded.file !== dataset.files[0]) {
        say("Uploading the dataset…");
        const file = dataset.files[0];
        uploaded = { file, url: (await upload(file, file.name, bar)).urls.get };
      }
      return uploaded.url;
    }
    if (folder.files.length) {
      if (!uploaded || uploaded.file !== folder.files) {
        say("Packing the folder…");
        const blob = await window.zipFiles([...folder.files]);
        uploaded = { file: folder.files, url: (await upload(blob, "dataset.zip", bar)).urls.get };
      }
      return uploaded.url;
    }
    if (url.value) return url.value;
    throw new Error("Choose a dataset: a file, a folder or a URL.");
  }
  review.addEventListener("click", async () => {
    review.disabled = true;
    try {
      await reviewLabels(await datasetUrl(), reviewBox, form.elements.namedItem("labels_file"));
    } catch (error) {
      say(error.message, true);
    } finally {
      review.disabled = false;
    }
  });
  const form = el("form", { "aria-labelledby": "new-title" },
    el("h2", { id: "new-title", text: "New training" }),
    el("label", { for: "dataset", text: "Dataset" }), dataset,
    el("span", { class: "help", id: "dataset-help",
      text: "A .zip or .tar of your music, or one audio file. Uploaded to this server." }),
    el("label", { for: "dataset-folder", text: "Or a folder of audio" }), folder,
    el("label", { for: "dataset-url", text: "Or a dataset URL" }), url,
    bar, review, reviewBox,
    el("label", { for: "destination", text: "Destination model" }), destination,
    el("span", { class: "help", text: "owner/name: each training adds a version to it." }),
    options, start);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    start.disabled = true;
    try {
      const input = readForm(form, properties);
      input.dataset_path = await datasetUrl();
      await ensureModel(destination.value);
      say("Starting the training…");
      const training = await api("POST",
        `/v1/models/${model.owner}/${model.name}/versions/${version.id}/trainings`,
        { destination: destination.value, input });
      say("");
      location.hash = `#/trainings/${training.id}`;
    } catch (error) {
      say(error.message, true);
    } finally {
      start.disabled = false;
    }
  });
  main.replaceChildren(form);
}

// --- training page -------------------------------------------------------------------------

const STAGES = ["check", "prepare", "vocals", "labels", "manifest", "train", "export", "samples"];

function drawCurve(canvas, progress) {
  const ctx = canvas.getContext("2d");
  const w = (canvas.width = canvas.clientWidth || 560);
  const h = (canvas.height = canvas.clientHeight || 190);
  ctx.clearRect(0, 0, w, h);
  const points = progress.train;
  if (points.length < 1) return;
  const total = progress.total || points[points.length - 1].step;
  const values = points.map((p) => p.ce).concat(progress.epochs.map((e) => e.valid || e.train));
  const lo = Math.min(...values), hi = Math.max(...values);
  const x = (step) => 30 + (w - 40) * (step / Math.max(total, 1));
  const y = (ce) => h - 20 - (h - 40) * ((ce - lo) / Math.max(hi - lo, 1e-6));
  ctx.strokeStyle = "#2450c8";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p.step), y(p.ce)) : ctx.moveTo(x(p.step), y(p.ce))));
  ctx.stroke();
  ctx.fillStyle = "#b3261e";
  const perEpoch = progress.total && progress.epochs.length ? progress.total / (progress.epochs.length || 1) : 0;
  for (const e of progress.epochs) {
    if (e.valid === undefined || !perEpoch) continue;
    ctx.fillRect(x(e.epoch * (total / Math.max(progress.epochs.length, 1))) - 3, y(e.valid) - 3, 6, 6);
  }
  ctx.fillStyle = "#5d5d6b";
  ctx.fillText(`ce ${hi.toFixed(2)}`, 2, 12);
  ctx.fillText(`${lo.toFixed(2)}`, 2, h - 22);
}

function eta(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  return m ? ` · about ${m} min ${s} s left` : ` · about ${s} s left`;
}

async function showTraining(id) {
  const status = el("span", { "data-status": "", id: "status", text: "…" });
  const stages = el("ol", { class: "stages", "aria-label": "Stages" },
    ...STAGES.map((s) => el("li", { "data-stage": s, text: s })));
  const bar = el("progress", { id: "train-progress", max: 1, value: 0,
    "aria-label": "Training progress" });
  const steps = el("span", { id: "steps" });
  const canvas = el("canvas", { id: "loss", role: "img", "aria-label": "Loss so far" });
  const log = el("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "Log" });
  const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
  const result = el("section", { id: "result", "aria-label": "Result" });
  cancel.addEventListener("click", async () => {
    try { await api("POST", `/v1/trainings/${id}/cancel`); } catch (e) { say(e.message, true); }
  });
  main.replaceChildren(el("h2", { text: `Training ${id}` }),
    el("p", {}, "Status: ", status), stages, el("p", {}, bar, el("br"), steps),
    el("h3", { text: "Loss" }), canvas, cancel, result,
    el("details", {}, el("summary", { text: "Log" }), log));
  let shown = false;
  async function tick() {
    let training, progress;
    try {
      [training, progress] = await Promise.all([api("GET", `/v1/trainings/${id}`),
        api("GET", `/v1/trainings/${id}/progress`)]);
    } catch (error) {
      if (error.status === 401) return showSignIn("Your session ended: sign in again.");
      say(error.message, true);
      return;
    }
    status.dataset.status = training.status;
    status.textContent = training.status;
    for (const li of stages.children) {
      const s = li.dataset.stage;
      li.className = progress.stage === s ? "now" : progress.stages_done.includes(s) ? "done" : "";
      li.setAttribute("aria-current", progress.stage === s ? "step" : "false");
    }
    bar.max = progress.total || 1;
    bar.value = progress.step;
    steps.textContent = progress.total
      ? `step ${progress.step}/${progress.total}${eta(progress.eta_s)}` : progress.stage || "";
    drawCurve(canvas, progress);
    log.textContent = (training.logs || "").split("\n").slice(-200).join("\n");
    cancel.hidden = TERMINAL.includes(training.status);
    if (training.error) say(training.error, true);
    if (training.status === "succeeded" && !shown) {
      shown = true;
      showResult(result, training);
    }
    if (!TERMINAL.includes(training.status)) timer = setTimeout(tick, 1000);
  }
  await tick();
}

function showResult(section, training) {
  const out = training.output || {};
  const version = (out.version || "").split(":").pop();
  const samples = el("div", { class: "samples" }, ...(out.samples || []).map((s, i) =>
    el("figure", {},
      el("figcaption", { text: s.prompt || `sample ${i + 1}` }),
      el("p", { text: "fine-tuned" }), el("audio", { controls: true, preload: "auto", src: s.finetuned }),
      el("p", { text: "base" }), el("audio", { controls: true, preload: "auto", src: s.base }))));
  const curves = out.curves
    ? el("p", {}, el("img", { class: "curve", src: out.curves.png, alt: "Loss and perplexity per step and epoch" }),
      el("br"), el("a", { href: out.curves.csv, text: "Curves as CSV" }))
    : null;
  const quality = out.quality
    ? el("p", { class: "quality" }, el("span", { text: out.quality.summary || "" }), " ",
      el("a", { href: out.quality.json, text: "Quality report (JSON)" }))
    : null;
  const report = el("div", { id: "report" });
  const prompt = el("input", { type: "text", id: "prompt", name: "prompt", required: true,
    value: (out.samples && out.samples[0] && out.samples[0].prompt) || "" });
  const duration = el("input", { type: "number", id: "duration", name: "duration", min: 1,
    max: 30, value: 4 });
  const melody = el("input", { type: "file", id: "melody", name: "input_audio", accept: "audio/*" });
  const generated = el("div", { id: "generated" });
  const go = el("button", { type: "submit", text: "Generate" });
  const tryIt = el("form", { "aria-labelledby": "try-title" },
    el("h3", { id: "try-title", text: "Try it" }),
    el("label", { for: "prompt", text: "Prompt" }), prompt,
    el("label", { for: "duration", text: "Duration (s)" }), duration,
    el("label", { for: "melody", text: "Melody (melody variants only)" }), melody,
    go, generated);
  tryIt.addEventListener("submit", async (event) => {
    event.preventDefault();
    go.disabled = true;
    say("Generating…");
    try {
      const input = { prompt: prompt.value, duration: parseInt(duration.value, 10) };
      if (melody.files.length) {
        input.input_audio = (await upload(melody.files[0], melody.files[0].name,
          el("progress"))).urls.get;
      }
      let prediction = await api("POST", "/v1/predictions", { version, input },
        { Prefer: "wait=60" });
      while (!TERMINAL.includes(prediction.status)) {
        await new Promise((r) => setTimeout(r, 1000));
        prediction = await api("GET", `/v1/predictions/${prediction.id}`);
      }
      if (prediction.status !== "succeeded") throw new Error(prediction.error || prediction.status);
      const src = Array.isArray(prediction.output) ? prediction.output[0] : prediction.output;
      generated.replaceChildren(el("audio", { controls: true, preload: "auto", src }));
      say("");
    } catch (error) {
      say(error.message, true);
    } finally {
      go.disabled = false;
    }
  });
  section.replaceChildren(el("h3", { text: "Result" }),
    el("p", {}, el("a", { href: out.weights, download: "trained_model.tar", text: "Download weights" }),
      ` · version ${out.version || ""}`),
    el("h3", { text: "Samples: fine-tuned and base, same prompt and seed" }), samples,
    quality, curves, report, tryIt);
  api("GET", `/v1/trainings/${training.id}/report`).then((r) => {
    if (!r) return;
    const rows = (r.rejected || []).map((x) => el("tr", {}, el("td", { text: x.file }),
      el("td", { text: x.reason })));
    report.replaceChildren(el("h3", { text: "Dataset" }),
      el("p", { text: `${r.files_used} files used, ${(r.rejected || []).length} rejected, ${r.minutes} min` }),
      rows.length ? el("table", {}, el("tr", {}, el("th", { text: "Rejected file" }),
        el("th", { text: "Why" })), ...rows) : null);
  }).catch(() => {});
}

// --- list ----------------------------------------------------------------------------------

async function showList() {
  const [trainings, models] = await Promise.all([api("GET", "/v1/trainings"),
    api("GET", "/v1/models")]);
  const rows = trainings.results.map((t) => el("tr", {},
    el("td", {}, el("a", { href: `#/trainings/${t.id}`, text: t.id })),
    el("td", { text: t.destination }),
    el("td", {}, el("span", { "data-status": t.status, text: t.status })),
    el("td", { text: (t.created_at || "").replace("T", " ").slice(0, 19) })));
  const mine = models.results.slice(1).map((m) => el("li", {},
    `${m.owner}/${m.name}`, m.latest_version ? ` · latest ${m.latest_version.id.slice(0, 12)}` : " · no version yet"));
  main.replaceChildren(el("h2", { text: "Trainings" }),
    rows.length ? el("table", {}, el("tr", {}, el("th", { text: "Training" }),
      el("th", { text: "Model" }), el("th", { text: "Status" }), el("th", { text: "Created" })), ...rows)
      : el("p", {}, "No training yet. ", el("a", { href: "#/new", text: "Start one" }), "."),
    el("h2", { text: "Models" }), el("ul", {}, ...mine));
}

// --- routing -------------------------------------------------------------------------------

async function route() {
  clearTimeout(timer);
  try {
    await api("GET", "/ui/whoami");
  } catch (error) {
    return showSignIn(error.status === 401 ? "" : error.message);
  }
  document.getElementById("nav").hidden = false;
  const hash = location.hash.replace(/^#/, "");
  const match = hash.match(/^\/trainings\/([a-z0-9]+)$/);
  try {
    if (match) await showTraining(match[1]);
    else if (hash === "/new") await showNew();
    else await showList();
  } catch (error) {
    if (error.status === 401) showSignIn("Your session ended: sign in again.");
    else say(error.message, true);
  }
  main.focus();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  await api("DELETE", "/ui/session").catch(() => {});
  showSignIn("");
});
window.addEventListener("hashchange", route);
route();
