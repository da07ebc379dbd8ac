// The Webcam tab's "Run in this browser" panel: manifest → size shown → download with progress → camera →
// backend check → a loop in which the newest video frame always wins (no frame waits for an earlier one).
// Each frame's people get server mode's track ids and Kalman smoothing (temporal.js, settings from the manifest).
// Frames are read from the <video> element and never leave the page. Loaded by the app as a module in <head>; it
// waits for the panel (#be-panel) that the Webcam tab renders.

import { preprocess, decode, toResultJson } from "./decode.js";
import {
  loadOrt, download, createSession, runSession, chooseBackend, choosePrecision, modelFile, wasmThreads, webGpuAdapter,
  TOLERANCE, TOLERANCE_FP16, CHECK_SECONDS,
} from "./engine.js";
import { drawRows } from "./draw.js";
import { LiveChain } from "./temporal.js";

const state = { running: false, rows: [], stats: {}, history: [], frames: 0, firstFrameMs: null, backend: null };
window.__browserEngine = state; // read by bench/bench_browser.py and the browser tests

const $ = (id) => document.getElementById(id);
const say = (text) => { $("be-status").textContent = text; };
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const RUNNING = "Running in this browser: no frames leave your device.";

// The Webcam tab's model picker (absent with one model, or in the pop-out tab, which gets it in its address).
const modelName = () => document.querySelector("#webcam-model input")?.value
  ?? new URLSearchParams(location.search).get("model") ?? "";

// Auto: the smallest offered resolution, so a first frame comes within seconds even on one WASM thread (576² took
// 14-18 s per frame on a loaded 2-core machine: it looked hung). Measured frames then say what else would run.
function startResolution() {
  const select = $("be-resolution");
  const sizes = [...select.options].map((o) => Number(o.value)).filter((r) => r > 0);
  if (select.value !== "auto") return { resolution: Number(select.value), why: "chosen in Resolution" };
  return { resolution: Math.min(...sizes), sizes,
           why: "Auto: the smallest, so the first frames come fast on any device" };
}

// A frame this fast (model only) is live enough; a larger resolution is suggested when its estimate stays under it.
const LIVE_MS = 250;

function suggestion(ms, resolution, sizes) {
  // One sentence from the measured model time: the cost grows about with the pixel count (an estimate).
  const estimate = (r) => ms * (r / resolution) ** 2;
  const bigger = sizes.filter((r) => r > resolution && estimate(r) <= LIVE_MS);
  const measured = `Measured ${ms.toFixed(0)} ms per frame (model) at ${resolution}²`;
  if (bigger.length) {
    const r = Math.max(...bigger);
    return `${measured}: ${r}² should also run live here (about ${estimate(r).toFixed(0)} ms, an estimate); `
      + "pick it in Resolution and start again for more detail.";
  }
  const next = sizes.find((r) => r > resolution);
  return next ? `${measured}: ${next}² would take about ${(estimate(next) / 1000).toFixed(1)} s per frame (an `
    + "estimate), so it stays here; pick another in Resolution to try it." : `${measured}.`;
}

async function manifest(resolution) {
  for (;;) {
    const model = modelName();
    const query = `resolution=${resolution}` + (model ? `&model=${encodeURIComponent(model)}` : "");
    const response = await fetch(`/browser-engine/manifest?${query}`);
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const body = await response.json();
    if (body.state === "ready") return body;
    if (body.state !== "preparing" && body.state !== "waiting") throw new Error(body.message);
    say(body.message);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function check() {
  try {
    say("Asking the server for the browser model…");
    state.start = startResolution();
    state.manifest = await manifest(state.start.resolution);
    const m = state.manifest;
    state.adapter = await webGpuAdapter();
    state.precision = choosePrecision(state.adapter, m); // fp16 only for a WebGPU adapter with shader-f16
    const file = modelFile(m, state.precision);
    const what = state.precision === "fp16" ? "fp16, for this GPU" : "fp32";
    say(`The model is ${mb(file.bytes)} (${what}, ${m.resolution}²: ${state.start.why}), downloaded once and kept `
      + "by your browser.");
    $("be-go").textContent = `Download ${mb(file.bytes)} and start`;
    $("be-go").hidden = false;
  } catch (err) {
    say(`The browser engine is not available: ${reason(err)} Server mode still works.`);
  }
}

async function camera() {
  try {
    return await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
  } catch (err) {
    throw new Error(`the camera could not be opened (${err.name}); allow camera access and try again.`);
  }
}

// The smallest module with one SIMD instruction: onnxruntime-web's WASM builds need SIMD.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0,
  65, 0, 253, 15, 253, 98, 11]);

function reason(err) {
  // One sentence for the page, whatever failed.
  if (err instanceof RangeError) return "there is not enough memory on this device for the model.";
  const text = String(err?.message ?? err).trim();
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

async function fetchModel(file) {
  return download(file.url, file.bytes, (got, total) => {
    $("be-progress").value = got / total;
    say(`Downloading the model: ${mb(got)} of ${mb(total)}`);
  });
}

async function start() {
  const m = state.manifest;
  const adapter = state.adapter;
  $("be-go").hidden = true;
  try {
    if (!adapter && !(typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE))) {
      throw new Error("this browser has neither WebGPU nor WebAssembly SIMD, which the model needs.");
    }
    say("Starting the camera…");
    const video = $("be-video");
    video.srcObject = await camera(); // before the download: a denied camera should not cost 140 MB
    await video.play();
    const t0 = performance.now();
    say("Loading onnxruntime-web…"); // before the download too: a page without it should not cost 140 MB
    // WASM always from the WASM build (in its worker); the WebGPU build only for WebGPU: once its WebGPU start has
    // failed, that build's WASM backend never creates a session (onnxruntime-web 1.30, seen in headless Chromium).
    const builds = { wasm: await loadOrt(m.ort, false), webgpu: adapter ? await loadOrt(m.ort, true) : null };
    const tDownload = performance.now();
    let bytes = await fetchModel(modelFile(m, state.precision));
    state.downloadMs = performance.now() - tDownload;
    const sessions = {};
    // Promises, so a WebGPU session still being made when its time box ran out is released when it arrives.
    const session = (backend) => (sessions[backend] ??= createSession(builds[backend], bytes, backend));
    const checkFrame = grab(video, m).input; // one frame for both backends: a live camera moves in between
    let late = false; // set when WebGPU ran out of its time box: its session, when it comes, runs nothing
    const runOn = async (backend) => {
      const made = await session(backend);
      if (late && backend === "webgpu") throw new Error("the WebGPU check ran out of time");
      return runSession(builds[backend], made, checkFrame.slice(), m.resolution);
    };
    say(adapter ? `Checking WebGPU against WASM on one frame (WebGPU gets ${CHECK_SECONDS} s)…`
      : "Starting WASM…");
    const decodeAll = (out) => decode(out, m.decode, video.videoWidth, video.videoHeight, 0);
    const tolerance = state.precision === "fp16" ? TOLERANCE_FP16 : TOLERANCE;
    const choice = adapter
      ? await chooseBackend(runOn, decodeAll, tolerance)
      : { backend: "wasm", note: "WebGPU is not available in this browser; running on WASM." };
    late = Boolean(choice.timedOut);
    state.backend = choice.backend;
    // WASM always runs the fp32 file (the fp16 one is for the GPU); sessions not used from here on are released.
    const keep = choice.backend === "wasm" && state.precision === "fp16" ? null : choice.backend;
    for (const name of Object.keys(sessions).filter((n) => n !== keep)) {
      const pending = sessions[name];
      delete sessions[name];
      const released = pending.then((s) => s.release(), () => {}); // a failed start has nothing to release
      if (!(choice.timedOut && name === "webgpu")) await released; // a late one is released when it arrives
    }
    if (keep === null) {
      state.precision = "fp32";
      bytes = await fetchModel(m.model);
    }
    const running = await session(choice.backend);
    state.threads = choice.backend === "wasm" ? wasmThreads() : null;
    const threads = choice.backend === "wasm" ? `, ${threadNote()}` : "";
    const engine = `${choice.backend.toUpperCase()} (${state.precision}${threads})`;
    $("be-backend").textContent = `Running on ${engine}. ${choice.note}`;
    say(RUNNING);
    $("be-choice").textContent = `${m.resolution}² (${state.start.why}).`
      + (state.start.sizes ? " After a few frames this says what else would run here." : "");
    state.running = true;
    state.startedAt = t0;
    loop(builds[choice.backend], running, video, m);
  } catch (err) {
    say(`The browser engine stopped: ${reason(err)} Server mode still works.`);
  }
}

function grab(video, m) {
  const canvas = (state.grabCanvas ??= document.createElement("canvas"));
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  return { input: preprocess(pixels, canvas.width, canvas.height, m.resolution, m.decode.mean, m.decode.std) };
}

async function loop(ort, session, video, m) {
  const overlay = $("be-canvas");
  let last = performance.now();
  while (state.running) {
    const t0 = performance.now();
    const { input } = grab(video, m); // the newest frame, taken only when the previous one is done
    const t1 = performance.now();
    // A frame slower than a second counts up in the status line instead of leaving the page still.
    const ticker = setInterval(() => {
      if (state.running) say(`${RUNNING} Frame ${state.frames + 1} running: ${((performance.now() - t1) / 1000).toFixed(0)} s`
        + (state.frames ? ` (the last one took ${(state.stats.model / 1000).toFixed(1)} s in the model).` : "."));
    }, 1000);
    const out = await runSession(ort, session, input, m.resolution).finally(() => clearInterval(ticker));
    if (state.running) say(RUNNING);
    const t2 = performance.now();
    const threshold = Number($("be-threshold").value);
    const rows = decode(out, m.decode, video.videoWidth, video.videoHeight, threshold);
    const t3 = performance.now();
    // Ids and the Kalman filter of server mode (temporal.js), timed at the frame's capture.
    state.smoothing = $("be-smooth")?.checked ?? true; // on unless unticked (a page without the box: on)
    state.chain ??= new LiveChain(m.temporal);
    state.decoded = rows; // before ids and smoothing (the browser tests compare)
    state.rows = state.chain.update(rows, t0 / 1000, {
      threshold, keypointThreshold: Number($("be-kp-threshold").value), smoothing: state.smoothing });
    const t3s = performance.now();
    overlay.width = video.videoWidth;
    overlay.height = video.videoHeight;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    drawRows(ctx, state.rows, m.schema, Number($("be-kp-threshold").value), Math.max(1, overlay.width / 640),
      $("be-mirror").checked);
    const t4 = performance.now();
    state.frames += 1;
    state.firstFrameMs ??= t4 - state.startedAt;
    state.stats = { pre: t1 - t0, model: t2 - t1, post: t3 - t2, smooth: t3s - t3, draw: t4 - t3s,
      fps: 1000 / (t4 - last), people: state.rows.length };
    state.history = [...state.history.slice(-49), state.stats];
    state.frameSize = [video.videoWidth, video.videoHeight];
    last = t4;
    if (state.frames === 3 && state.start?.sizes) {
      const ms = state.history.slice(-2).map((h) => h.model).sort((a, b) => a - b)[0]; // the faster of two
      $("be-choice").textContent = `${m.resolution}² (${state.start.why}). `
        + suggestion(ms, m.resolution, state.start.sizes);
    }
    const s = state.stats;
    $("be-readout").textContent = `${s.fps.toFixed(1)} fps · pre ${s.pre.toFixed(0)} ms · model ${s.model.toFixed(0)} ms`
      + ` · post ${s.post.toFixed(0)} ms · ids${state.smoothing ? " + smoothing" : ""} ${s.smooth.toFixed(1)} ms`
      + ` · draw ${s.draw.toFixed(0)} ms · ${state.rows.length} person(s)`
      + (1 / s.fps > m.temporal.tracker.max_seconds_lost // server mode's settings, counted in seconds
        ? ` · frames are over ${m.temporal.tracker.max_seconds_lost} s apart: ids and smoothing restart each frame`
        : "");
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
}

function saveJson() {
  const m = state.manifest;
  if (!m || !state.frameSize) return;
  const [width, height] = state.frameSize;
  const data = toResultJson(state.rows, m.schema.names, Number($("be-kp-threshold").value), {
    width, height, model: { ...m.model.info, engine: `onnxruntime-web (${state.backend}, ${state.precision})` },
    threshold: Number($("be-threshold").value), resolution: m.resolution, inferenceMs: state.stats.model ?? 0,
    smoothing: state.smoothing ? m.temporal.smoother : "off", backend: state.backend, precision: state.precision,
  });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  link.download = "webcam_frame_keypoints.json";
  link.click();
}

function stop() {
  state.running = false;
  state.chain = null; // a new start numbers people from 0 again
  const stream = $("be-video").srcObject;
  if (stream) stream.getTracks().forEach((t) => t.stop());
  say("Stopped.");
}

function threadNote() {
  // How many WASM threads this page got, and why.
  const n = wasmThreads();
  if (!globalThis.crossOriginIsolated) return "1 thread: this page is not cross-origin isolated";
  return `${n} thread${n === 1 ? "" : "s"}, one per core the browser reports`;
}

function offerPopOut() {
  // Embedded pages (a Space's iframe) cannot be cross-origin isolated, so WASM runs on one thread there; the app
  // serves the same panel in its own tab with COOP/COEP (/browser-engine/live), where it gets the device's threads.
  if (globalThis.crossOriginIsolated) return;
  const link = $("be-popout");
  const cores = navigator.hardwareConcurrency || 1;
  const query = new URLSearchParams({ resolution: $("be-resolution").value, model: modelName() });
  if (!query.get("model")) query.delete("model");
  link.href = `/browser-engine/live?${query}`;
  link.textContent = `Open in its own tab (WASM there gets ${cores} thread${cores === 1 ? "" : "s"}; here 1)`;
  link.hidden = cores < 2;
}

function wire(panel) {
  if (panel.dataset.wired) return;
  panel.dataset.wired = "1";
  offerPopOut();
  $("be-popout").addEventListener("click", offerPopOut); // the model and resolution picked by then
  $("be-check").addEventListener("click", check);
  $("be-go").addEventListener("click", start);
  $("be-stop").addEventListener("click", stop);
  $("be-json").addEventListener("click", saveJson);
  $("be-mirror").addEventListener("change", (e) => {
    $("be-stage").style.transform = e.target.checked ? "scaleX(-1)" : "";
  });
}

// Gradio renders the panel after this module runs (and again when the accordion opens): watch for it.
const findPanel = () => {
  const panel = $("be-panel");
  if (panel) wire(panel);
};
new MutationObserver(findPanel).observe(document.documentElement, { childList: true, subtree: true });
findPanel();
