// onnxruntime-web: loading the pinned build (checked against its SRI hashes), downloading the model with progress,
// and choosing the precision and the backend. WebGPU is used only after one check frame agrees with WASM within the
// parity tolerances (onnxruntime's WebGPU GridSample has given wrong results before, onnxruntime issue #32275).

// fp32 on both backends: the parity test's bounds (torch vs onnxruntime vs this page, tests/test_browser_engine.py).
export const TOLERANCE = { px: 0.5, conf: 1e-3, covRel: 0.01 };
// The fp16 file on WebGPU against WASM running the same file. onnxruntime on a CPU keeps the fp16 tensors but
// computes most ops in fp32; measured that way the fp16 file's persons differ from fp32's by at most 0.33 px, 5e-4 in
// scores, 1.8e-3 in confidences, 0.9 % in covariances (docs/webcam.md). A GPU also computes in f16: 4-6 times that.
export const TOLERANCE_FP16 = { px: 2, conf: 1e-2, covRel: 0.05 };
// Rows compared on the check frame: the best ones, each matched to a row of the other backend's best CHECK_ROWS
// + CHECK_SLACK (two near-equal scores may swap ranks).
export const CHECK_ROWS = 10;
const CHECK_SLACK = 5;
// The WebGPU half of the check (session + one frame) gets this long; past it the page runs WASM and says why. A
// software adapter (seen here: Mesa's lavapipe) takes minutes per frame, and a page that shows nothing meanwhile
// looks hung.
export const CHECK_SECONDS = 8;

export function choosePrecision(adapter, manifest) {
  // fp16 only for a WebGPU adapter that runs f16 shaders and a server that made the fp16 file; WASM is always fp32.
  return adapter?.features?.has?.("shader-f16") && manifest.fp16 ? "fp16" : "fp32";
}

export function modelFile(manifest, precision) {
  return precision === "fp16" ? manifest.fp16 : manifest.model;
}

async function verifiedBlobUrl(url, integrity, type) {
  const response = await fetch(url, { integrity, cache: "force-cache" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return URL.createObjectURL(new Blob([await response.arrayBuffer()], { type }));
}

export async function loadOrt(source, wantWebGpu) {
  // source: the manifest's `ort` ({base, integrity, local}). Every file is fetched with its integrity hash, so a CDN
  // copy that differs from the pinned npm package is refused by the browser. Called before the model download: a
  // page that cannot get onnxruntime-web says so in one sentence instead of after 140 MB.
  try {
    return await loadOrtFiles(source, wantWebGpu);
  } catch (err) {
    console.warn("onnxruntime-web did not load", err);
    throw new Error(source.local
      ? `onnxruntime-web could not be loaded from this server (${String(err?.message ?? err)})`
      : "onnxruntime-web could not be loaded: this server has no copy and the CDN is not reachable; run `npm ci` "
        + "in web/ on the server or allow the CDN (cdn.jsdelivr.net)");
  }
}

async function loadOrtFiles(source, wantWebGpu) {
  const [main, glue, wasm] = wantWebGpu
    ? ["ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"]
    : ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];
  const get = (name, type) => verifiedBlobUrl(source.base + name, source.integrity[name], type);
  const [mainUrl, glueUrl, wasmUrl] = await Promise.all([
    get(main, "text/javascript"), get(glue, "text/javascript"), get(wasm, "application/wasm"),
  ]);
  const ort = await import(mainUrl);
  ort.env.wasm.wasmPaths = { mjs: glueUrl, wasm: wasmUrl };
  // A WASM run takes seconds on a slow CPU: in onnxruntime-web's worker it leaves the page responsive. (The WebGPU
  // build keeps runs on the page's thread: a proxy worker cannot share the page's GPU device.)
  ort.env.wasm.proxy = !wantWebGpu;
  return ort;
}

export async function download(url, expectedBytes, onProgress) {
  // The model bytes with progress; the size is known from the manifest before anything is fetched.
  const response = await fetch(url);
  if (!response.ok) throw new Error(`model download failed: HTTP ${response.status}`);
  const total = Number(response.headers.get("Content-Length")) || expectedBytes;
  const buffer = new Uint8Array(total);
  const reader = response.body.getReader();
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer.set(value, received);
    received += value.length;
    onProgress(received, total);
  }
  if (received !== total) throw new Error(`model download incomplete: ${received} of ${total} bytes`);
  return buffer;
}

export async function webGpuAdapter() {
  // A GPU adapter, or null: navigator.gpu exists in browsers whose machine still has no usable adapter.
  if (!globalThis.navigator?.gpu) return null;
  try {
    return await navigator.gpu.requestAdapter();
  } catch {
    return null;
  }
}

export function wasmThreads() {
  // Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages (the pop-out tab, served
  // with COOP/COEP by /browser-engine/live): there, one per logical core the browser reports.
  return globalThis.crossOriginIsolated ? Math.max(1, navigator.hardwareConcurrency || 1) : 1;
}

export async function createSession(ort, bytes, backend, options = {}) {
  // options: extra session options (the WebGPU test passes logSeverityLevel 0 to list the nodes left on the CPU).
  if (backend === "wasm") ort.env.wasm.numThreads = wasmThreads();
  return ort.InferenceSession.create(bytes, {
    executionProviders: [backend], graphOptimizationLevel: "all", ...options,
  });
}

export async function runSession(ort, session, input, size) {
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, size, size]) };
  const out = await session.run(feeds);
  const pick = (name) => ({ data: out[name].data, dims: out[name].dims });
  return { dets: pick("dets"), labels: pick("labels"), keypoints: pick("keypoints") };
}

function rowClose(p, q, tol) {
  // Same class, score, and every keypoint's xy, confidence and covariance within tol.
  const close = (x, y, abs) => (Number.isNaN(x) && Number.isNaN(y)) || Math.abs(x - y) <= abs;
  if (p.className !== q.className || !close(p.score, q.score, tol.conf)) return false;
  for (let j = 0; j < p.points.length; j++) {
    const [u, v] = [p.points[j], q.points[j]];
    if (!close(u.x, v.x, tol.px) || !close(u.y, v.y, tol.px) || !close(u.confidence, v.confidence, tol.conf)) {
      return false;
    }
    const scale = Math.max(Math.abs(u.cov[0][0]), Math.abs(u.cov[1][1]), 1e-9);
    for (let r = 0; r < 2; r++) {
      for (let c = 0; c < 2; c++) if (!close(u.cov[r][c], v.cov[r][c], tol.covRel * scale)) return false;
    }
  }
  return true;
}

function everyRowFound(a, b, tol) {
  // Each of a's best rows has its own close row among b's best (plus slack).
  const pool = b.slice(0, CHECK_ROWS + CHECK_SLACK);
  const used = new Set();
  return a.slice(0, CHECK_ROWS).every((p) => {
    const k = pool.findIndex((q, i) => !used.has(i) && rowClose(p, q, tol));
    if (k >= 0) used.add(k);
    return k >= 0;
  });
}

export function rowsAgree(a, b, tol = TOLERANCE) {
  // Same instances (the best CHECK_ROWS of each side found on the other), keypoints within tol.px, confidences within
  // tol.conf, covariances within tol.covRel of the larger variance. Rows are sorted best first (decode).
  if (Math.min(a.length, CHECK_ROWS) !== Math.min(b.length, CHECK_ROWS)) return false;
  return everyRowFound(a, b, tol) && everyRowFound(b, a, tol);
}

export async function chooseBackend(runOn, decodeRows, tol = TOLERANCE, seconds = CHECK_SECONDS) {
  // runOn(backend) → raw outputs of the check frame; decodeRows(outputs) → rows. Returns {backend, note}.
  // Called when the browser has a WebGPU adapter: WebGPU only when it runs within `seconds` and agrees with WASM
  // within tol (the fp16 tolerance when the fp16 file is checked); otherwise WASM, with one sentence saying why.
  let gpuRows;
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), seconds * 1000); });
  try {
    const out = await Promise.race([runOn("webgpu"), late]);
    if (out === null) {
      return { backend: "wasm", timedOut: true,
               note: `WebGPU took over ${seconds} s on the check frame (a software or very slow GPU); running on WASM.` };
    }
    gpuRows = decodeRows(out);
  } catch (err) {
    console.warn("WebGPU run failed", err);
    return { backend: "wasm", note: "WebGPU could not run this model here; running on WASM." };
  } finally {
    clearTimeout(timer);
  }
  const cpuRows = decodeRows(await runOn("wasm"));
  if (!rowsAgree(gpuRows, cpuRows, tol)) {
    return { backend: "wasm", note: "WebGPU gave different keypoints from WASM on the check frame; running on WASM." };
  }
  return { backend: "webgpu", note: `WebGPU agrees with WASM on the check frame (within ${tol.px} px).` };
}
