// Pre- and post-processing of rfdetr's ONNX export, reproducing RFDETR.predict (rfdetr 1.11) step by step:
//   preprocess: to [0,1] → bilinear resize with half-pixel centres and no antialiasing (torchvision
//     F.resize(antialias=False)) → ImageNet normalisation, NCHW float32;
//   decode: PostProcess._select_topk (sigmoid, flattened queries × classes, stable descending top num_select),
//     boxes (cxcywh → xyxy, scaled, clamped), keypoints of the row's class (x·w, y·h, sigmoid confidence, the
//     precision-Cholesky terms), the trace fusion of scores, then `score > threshold`; the covariance is
//     rfdetr.utilities.keypoints.precision_cholesky_to_pixel_covariance; rows named "__background__" or "" are
//     dropped and the rest sorted best first (rfdetr_demo.results.prediction.normalize). Pure functions: tested in Chromium.

export function preprocess(rgba, width, height, size, mean, std) {
  // rgba: Uint8ClampedArray of width*height*4 (canvas ImageData). Returns Float32Array(3*size*size).
  const out = new Float32Array(3 * size * size);
  const sx = width / size;
  const sy = height / size;
  const plane = size * size;
  for (let oy = 0; oy < size; oy++) {
    let fy = (oy + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    let y0 = Math.floor(fy);
    if (y0 > height - 1) y0 = height - 1;
    const y1 = Math.min(y0 + 1, height - 1);
    const wy = fy - y0;
    for (let ox = 0; ox < size; ox++) {
      let fx = (ox + 0.5) * sx - 0.5;
      if (fx < 0) fx = 0;
      let x0 = Math.floor(fx);
      if (x0 > width - 1) x0 = width - 1;
      const x1 = Math.min(x0 + 1, width - 1);
      const wx = fx - x0;
      const a = (y0 * width + x0) * 4;
      const b = (y0 * width + x1) * 4;
      const c = (y1 * width + x0) * 4;
      const d = (y1 * width + x1) * 4;
      for (let ch = 0; ch < 3; ch++) {
        const top = rgba[a + ch] * (1 - wx) + rgba[b + ch] * wx;
        const bottom = rgba[c + ch] * (1 - wx) + rgba[d + ch] * wx;
        const v = (top * (1 - wy) + bottom * wy) / 255;
        out[ch * plane + oy * size + ox] = (v - mean[ch]) / std[ch];
      }
    }
  }
  return out;
}

const sigmoid = (x) => 1 / (1 + Math.exp(-x));

function logSumExp(values) {
  let max = -Infinity;
  for (const v of values) if (v > max) max = v;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const v of values) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

function logMeanTrace(terms) {
  // PostProcess._keypoint_log_mean_trace over the row's active keypoints; terms: [[logit, log_l11, l21, log_l22]].
  const weighted = [];
  const logW = [];
  for (const [logit, logL11, l21, logL22] of terms) {
    const t1 = -2 * logL11;
    const t2 = -2 * logL22;
    const t3 = 2 * Math.log(Math.max(Math.abs(l21), 1e-12)) + t1 + t2;
    const lw = Math.log(Math.max(sigmoid(logit), 1e-12));
    weighted.push(logSumExp([t1, t2, t3]) + lw);
    logW.push(lw);
  }
  return logSumExp(weighted) - logSumExp(logW);
}

export function covariance(logL11, l21, logL22, width, height) {
  // Inverse of the precision L·Lᵀ, scaled to pixels; NaN where rfdetr gives NaN (non-finite terms).
  const l11 = Math.exp(logL11);
  const l22 = Math.exp(logL22);
  const invDet = 1 / (l11 * l11 * l22 * l22);
  const c00 = width * width * invDet * (l21 * l21 + l22 * l22);
  const c01 = width * height * (invDet * (-l11 * l21) + 0);
  const c11 = height * height * invDet * (l11 * l11);
  const ok = [logL11, l21, logL22, c00, c01, c11].every(Number.isFinite);
  return ok ? [[c00, c01], [c01, c11]] : [[NaN, NaN], [NaN, NaN]];
}

function topK(scores, count) {
  // Stable descending order (ties: lower flat index first), as PostProcess._select_topk.
  const idx = Array.from(scores.keys());
  idx.sort((a, b) => scores[b] - scores[a] || a - b);
  return idx.slice(0, count);
}

export function decode(outputs, params, width, height, threshold) {
  // outputs: {dets: {data, dims:[1,Q,4]}, labels: {data, dims:[1,Q,C]}, keypoints: {data, dims:[1,Q,S,D]}}.
  const [, numQueries, numClasses] = outputs.labels.dims;
  const [, , numSlots, depth] = outputs.keypoints.dims;
  const logits = outputs.labels.data;
  const boxes = outputs.dets.data;
  const kps = outputs.keypoints.data;
  const perClass = params.num_keypoints_per_class;
  const maxK = Math.max(0, ...perClass);
  const numKpClasses = perClass.length;
  if (numKpClasses * maxK !== numSlots) throw new Error(`keypoint slots ${numSlots} ≠ ${numKpClasses}×${maxK}`);
  const probs = new Float64Array(numQueries * numClasses);
  for (let i = 0; i < probs.length; i++) probs[i] = sigmoid(logits[i]);
  const chosen = topK(probs, Math.min(params.num_select, probs.length));
  const rows = [];
  for (const flat of chosen) {
    const q = Math.floor(flat / numClasses);
    const label = flat % numClasses;
    let score = probs[flat];
    const [cx, cy, bw, bh] = boxes.slice(q * 4, q * 4 + 4);
    const clampX = (v) => Math.min(Math.max(v * width, 0), width);
    const clampY = (v) => Math.min(Math.max(v * height, 0), height);
    const box = [clampX(cx - bw / 2), clampY(cy - bh / 2), clampX(cx + bw / 2), clampY(cy + bh / 2)];
    const active = label < numKpClasses ? perClass[label] : 0;
    const points = [];
    const terms = [];
    for (let j = 0; j < maxK; j++) {
      if (j >= active) {
        points.push({ x: 0, y: 0, confidence: 0, cov: [[NaN, NaN], [NaN, NaN]] });
        continue;
      }
      const o = ((q * numSlots) + label * maxK + j) * depth;
      const k = kps.subarray(o, o + depth);
      const cov = depth >= 7 ? covariance(k[4], k[5], k[6], width, height) : [[NaN, NaN], [NaN, NaN]];
      points.push({ x: k[0] * width, y: k[1] * height, confidence: sigmoid(k[2]), cov });
      terms.push([k[2], k[4], k[5], k[6]]);
    }
    if (label < numKpClasses && params.trace_alpha > 0 && depth >= 7) {
      const lmt = active > 0 ? logMeanTrace(terms) : 0;
      score = Math.min(sigmoid(Math.log(score) - params.trace_alpha * lmt), 1 - 2 ** -24);
    }
    if (!(score > threshold)) continue;
    const className = params.class_names[label] ?? "";
    if (className === "__background__" || className === "") continue;
    rows.push({ score, label, className, box, points });
  }
  rows.sort((a, b) => b.score - a.score);
  return rows;
}

export function toResultJson(rows, names, keypointThreshold, meta) {
  // The Image tab's JSON schema (rfdetr_demo.results.exports.result_dict); NaN → null, numbers rounded to 4 places.
  const num = (v) => (Number.isFinite(v) ? Math.round(v * 1e4) / 1e4 : null);
  const instances = rows.map((row, rank) => ({
    id: row.id ?? rank, // the track id (temporal.js; -1: untracked), else the rank
    class_name: row.className,
    score: num(row.score),
    box_xyxy: row.box.map(num),
    keypoints: names.map((name, j) => {
      const p = row.points[j];
      const visible = p.visible  // set by temporal.js: after the threshold, and smoothed joints it predicts
        ?? (p.confidence > 0 && Number.isFinite(p.x) && Number.isFinite(p.y) && p.confidence >= keypointThreshold);
      return { name, x: num(p.x), y: num(p.y), confidence: num(p.confidence), visible,
        covariance: p.cov.map((r) => r.map(num)) };
    }),
  }));
  return {
    image: { name: meta.name ?? "frame", width: meta.width, height: meta.height },
    model: meta.model,
    settings: { threshold: meta.threshold, keypoint_threshold: keypointThreshold, resolution: meta.resolution,
      smoothing: meta.smoothing ?? "off", backend: meta.backend ?? null, precision: meta.precision ?? null },
    inference_ms: Math.round(meta.inferenceMs * 100) / 100,
    keypoint_names: names,
    instances,
  };
}
