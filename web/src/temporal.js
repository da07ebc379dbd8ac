// Identity and smoothing for the in-browser engine: a step-for-step port of server mode's live chain
// (rfdetr_demo/temporal/stages.py LiveChain): ByteTrack ids (the `trackers` package's ByteTrackTracker with ids from
// the first frame, rfdetr_demo/temporal/tracking.py) → the keypoint threshold → the causal Kalman filter that uses
// each joint's predicted covariance as its measurement noise (rfdetr_demo/temporal/kalman.py KalmanSmoother).
// Every setting comes from the manifest's `temporal` (rfdetr_demo.temporal.stages.live_params), read off the Python
// objects, so both modes run the same filter; tests/test_temporal_js.py feeds one recorded sequence to both and
// compares ids and joints. Numbers the Python side keeps in float32 (boxes, scores, joints, covariances, IoU) are
// rounded with Math.fround where the result depends on it (threshold comparisons). No dependencies.

const f32 = Math.fround;

// -- small dense matrices (arrays of rows) ---------------------------------------------------------------------------
const zeros = (r, c) => Array.from({ length: r }, () => new Array(c).fill(0));
const eye = (n, s = 1) => zeros(n, n).map((row, i) => { row[i] = s; return row; });
const transpose = (a) => a[0].map((_, j) => a.map((row) => row[j]));
const add = (a, b) => a.map((row, i) => row.map((v, j) => v + b[i][j]));
const sub = (a, b) => a.map((row, i) => row.map((v, j) => v - b[i][j]));
const scale = (a, s) => a.map((row) => row.map((v) => v * s));
const matVec = (a, x) => a.map((row) => row.reduce((s, v, j) => s + v * x[j], 0));

function mul(a, b) {
  const n = a.length, m = b[0].length, k = b.length;
  const out = zeros(n, m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i][t] * b[t][j];
      out[i][j] = s;
    }
  }
  return out;
}

function inverse(m) {
  // Gauss-Jordan with partial pivoting (numpy.linalg.inv's LU gives the same to rounding for these small SPD blocks).
  const n = m.length;
  const a = m.map((row, i) => [...row, ...eye(n)[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const d = a[c][c];
    for (let j = 0; j < 2 * n; j++) a[c][j] /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c];
      if (f !== 0) for (let j = 0; j < 2 * n; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row) => row.slice(n));
}

function inv2([[a, b], [c, d]]) {
  // kalman.inv2: the closed form.
  const det = a * d - b * c;
  return [[d / det, -b / det], [-c / det, a / det]];
}

const symmetric = (p) => p.map((row, i) => row.map((v, j) => 0.5 * (v + p[j][i])));

// -- assignment: scipy.optimize.linear_sum_assignment (Crouse's shortest augmenting path, as scipy implements it) ----
export function linearSumAssignment(cost, maximize = false) {
  // cost: rows × cols. Returns [rows, cols] pairs sorted by row, as scipy does.
  let nr = cost.length;
  let nc = nr ? cost[0].length : 0;
  if (!nr || !nc) return [];
  let c = maximize ? cost.map((row) => row.map((v) => -v)) : cost.map((row) => [...row]);
  const transposed = nc < nr;
  if (transposed) {
    c = transpose(c);
    [nr, nc] = [nc, nr];
  }
  const lowest = Math.min(...c.flat());
  c = c.map((row) => row.map((v) => v - lowest));
  const u = new Array(nr).fill(0);
  const v = new Array(nc).fill(0);
  const path = new Array(nc).fill(-1);
  const col4row = new Array(nr).fill(-1);
  const row4col = new Array(nc).fill(-1);
  const spc = new Array(nc);
  for (let cur = 0; cur < nr; cur++) {
    const SR = new Array(nr).fill(false);
    const SC = new Array(nc).fill(false);
    spc.fill(Infinity);
    const remaining = Array.from({ length: nc }, (_, it) => nc - it - 1);
    let minVal = 0;
    let i = cur;
    let sink = -1;
    while (sink === -1) {
      let index = -1;
      let low = Infinity;
      SR[i] = true;
      for (let it = 0; it < remaining.length; it++) {
        const j = remaining[it];
        const r = minVal + c[i][j] - u[i] - v[j];
        if (r < spc[j]) {
          path[j] = i;
          spc[j] = r;
        }
        if (spc[j] < low || (spc[j] === low && row4col[j] === -1)) {
          low = spc[j];
          index = it;
        }
      }
      minVal = low;
      if (minVal === Infinity) throw new Error("infeasible assignment");
      const j = remaining[index];
      if (row4col[j] === -1) sink = j;
      else i = row4col[j];
      SC[j] = true;
      remaining[index] = remaining[remaining.length - 1];
      remaining.pop();
    }
    u[cur] += minVal;
    for (let r = 0; r < nr; r++) if (SR[r] && r !== cur) u[r] += minVal - spc[col4row[r]];
    for (let j = 0; j < nc; j++) if (SC[j]) v[j] -= minVal - spc[j];
    let j = sink;
    for (;;) {
      const r = path[j];
      row4col[j] = r;
      [col4row[r], j] = [j, col4row[r]];
      if (r === cur) break;
    }
  }
  const pairs = col4row.map((col, row) => (transposed ? [col, row] : [row, col]));
  return pairs.sort((a, b) => a[0] - b[0]);
}

// -- ByteTrack (trackers 2.6: ByteTrackTracker, ByteTrackTracklet, XYXYStateEstimator, KalmanMotionModel) -----------
export function iou(a, b) {
  // supervision.box_iou_batch: float64 arithmetic, float32 result.
  const iw = Math.max(Math.min(a[2], b[2]) - Math.max(a[0], b[0]), 0);
  const ih = Math.max(Math.min(a[3], b[3]) - Math.max(a[1], b[1]), 0);
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? f32(inter / union) : 0;
}

class BoxTrack {
  // One tracklet: state [x1, y1, x2, y2, vx1, vy1, vx2, vy2], constant velocity, H = [I 0].
  constructor(box, p) {
    this.x = [...box, 0, 0, 0, 0];
    this.P = eye(8, p.initial_covariance);
    this.R = eye(4, p.measurement_noise);
    this.id = -1;
    this.sinceUpdate = 0;
    this.sinceUpdateS = 0;
    this.consecutive = 1; // the first box counts as one update
  }

  predict(step, elapsed, p) {
    const F = eye(8);
    for (let k = 0; k < 4; k++) F[k][k + 4] = step;
    let Q;
    if (Math.abs(step - 1) <= p.nominal_step_tolerance_s * p.frame_rate) {
      Q = eye(8, p.process_noise); // the tuned one-frame noise
    } else {
      Q = zeros(8, 8); // a gap: discrete white-noise acceleration with the one-frame velocity variance
      const s2 = p.process_noise;
      for (let k = 0; k < 4; k++) {
        Q[k][k] = (s2 * step ** 4) / 4;
        Q[k][k + 4] = Q[k + 4][k] = (s2 * step ** 3) / 2;
        Q[k + 4][k + 4] = s2 * step ** 2;
      }
    }
    this.x = matVec(F, this.x);
    this.P = add(mul(mul(F, this.P), transpose(F)), Q);
    if (this.sinceUpdate > 0) this.consecutive = 0;
    this.sinceUpdate += 1;
    this.sinceUpdateS = elapsed === null ? 0 : this.sinceUpdateS + elapsed;
  }

  update(box) {
    const y = box.map((v, k) => v - this.x[k]);
    const PHt = this.P.map((row) => row.slice(0, 4));
    const S = add(PHt.slice(0, 4), this.R);
    const K = mul(PHt, inverse(S)); // 8 × 4
    this.x = this.x.map((v, i) => v + K[i].reduce((s, g, k) => s + g * y[k], 0));
    const IKH = eye(8).map((row, i) => row.map((v, j) => (j < 4 ? v - K[i][j] : v)));
    this.P = add(mul(mul(IKH, this.P), transpose(IKH)), mul(mul(K, this.R), transpose(K))); // Joseph form
    this.sinceUpdate = 0;
    this.sinceUpdateS = 0;
    this.consecutive += 1;
  }

  box() {
    return this.x.slice(0, 4);
  }
}

export class PersonTracker {
  // rfdetr_demo.temporal.tracking.PersonTracker with timestamps: activation and the high/low split follow the person
  // threshold (capped at max_activation), a track keeps its id through max_seconds_lost without a match.
  constructor(params) {
    this.p = params;
    this.tracks = [];
    this.nextId = 0;
    this.last = null;
  }

  timing(t) {
    // BaseTracker._predict_timing: {step (frames), elapsed (s), skip}.
    const fr = this.p.frame_rate;
    if (!Number.isFinite(t)) return { skip: true };
    if (this.last === null) {
      this.last = t;
      return { step: (1 / fr) * fr, elapsed: 1 / fr };
    }
    if (t < this.last) return { skip: true };
    if (t === this.last) return { step: 0, elapsed: 0 };
    const elapsed = t - this.last;
    this.last = t;
    return { step: elapsed * fr, elapsed };
  }

  associate(boxes, dets) {
    // ByteTrackTracker._get_associated_indices: optimal IoU assignment, pairs under the IoU floor dropped.
    const sim = boxes.map((b) => dets.map((d) => iou(b, d)));
    const matched = [];
    const freeTracks = new Set(boxes.keys());
    const freeDets = new Set(dets.keys());
    if (boxes.length && dets.length) {
      for (const [r, c] of linearSumAssignment(sim, true)) {
        if (sim[r][c] >= f32(this.p.minimum_iou_threshold)) {
          matched.push([r, c]);
          freeTracks.delete(r);
          freeDets.delete(c);
        }
      }
    }
    const sorted = (s) => [...s].sort((a, b) => a - b);
    return { matched, freeTracks: sorted(freeTracks), freeDets: sorted(freeDets) };
  }

  update(boxes, scores, t, threshold) {
    // boxes [[x1, y1, x2, y2]], scores [s]: one id per row (-1: untracked), rows kept in their order.
    const p = this.p;
    const thr = Math.min(Math.max(threshold, 0), p.max_activation);
    const ids = new Array(boxes.length).fill(-1);
    const timing = this.timing(t);
    if (timing.skip) return ids;
    if (!this.tracks.length && !boxes.length) return ids;
    if (timing.step > 0) for (const track of this.tracks) track.predict(timing.step, timing.elapsed, p);
    const budget = p.max_seconds_lost;
    this.tracks = this.tracks.filter((track) => track.sinceUpdateS <= budget);
    const dets = boxes.map((b) => b.map(f32));
    const conf = scores.map(f32);
    const high = [];
    const low = [];
    conf.forEach((c, i) => (c >= f32(thr) ? high : low).push(i));
    const predicted = this.tracks.map((track) => track.box());
    const first = this.associate(predicted, high.map((i) => dets[i]));
    const confirm = (track) => {
      if (track.consecutive >= p.minimum_consecutive_frames && track.id === -1) track.id = this.nextId++;
    };
    for (const [r, c] of first.matched) {
      const track = this.tracks[r];
      track.update(dets[high[c]]);
      confirm(track);
      ids[high[c]] = track.id;
    }
    const second = this.associate(first.freeTracks.map((r) => predicted[r]), low.map((i) => dets[i]));
    for (const [r, c] of second.matched) {
      const track = this.tracks[first.freeTracks[r]];
      track.update(dets[low[c]]);
      confirm(track);
      ids[low[c]] = track.id;
    }
    for (const c of first.freeDets) {
      const i = high[c];
      if (conf[i] < thr) continue; // float64 comparison here, as ByteTrack's _spawn_new_tracks
      const track = new BoxTrack(dets[i], p);
      if (p.minimum_consecutive_frames <= 1) track.id = this.nextId++; // ids from the first frame (tracking.py)
      this.tracks.push(track);
      ids[i] = track.id;
    }
    this.tracks = this.tracks.filter((track) => track.sinceUpdateS <= budget
      && (track.id !== -1 || track.consecutive >= p.minimum_consecutive_frames || track.sinceUpdate === 0));
    return ids;
  }
}

// -- the Kalman filter of every joint (rfdetr_demo.temporal.kalman.KalmanSmoother, causal) ---------------------------
const factorial = (n) => (n <= 1 ? 1 : n * factorial(n - 1));

function kron2(one) {
  // kron(one, I₂): the x and y axes share the 1-D model.
  const n = one.length;
  const out = zeros(2 * n, 2 * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let a = 0; a < 2; a++) out[2 * i + a][2 * j + a] = one[i][j];
  return out;
}

export function transition(dt, order) {
  const one = eye(order + 1);
  for (let i = 0; i < order; i++) for (let j = i + 1; j <= order; j++) one[i][j] = dt ** (j - i) / factorial(j - i);
  return kron2(one);
}

export function processNoise(dt, order) {
  const one = zeros(order + 1, order + 1);
  for (let i = 0; i <= order; i++) {
    for (let j = 0; j <= order; j++) {
      const [p, q] = [order - i, order - j];
      one[i][j] = dt ** (p + q + 1) / ((p + q + 1) * factorial(p) * factorial(q));
    }
  }
  return kron2(one);
}

export class KalmanSmoother {
  constructor(params) {
    this.p = params;
    this.dim = 2 * (params.order + 1);
    this.tracks = new Map();
  }

  noise(cov, diag) {
    // KalmanSmoother._noise: the joint's covariance, symmetric and strictly positive; none: 2 % of the person.
    if (!cov) return [[(0.02 * diag) ** 2, 0], [0, (0.02 * diag) ** 2]];
    const r = cov.map((row) => row.map(f32));
    return [[r[0][0] + 1e-3, 0.5 * (r[0][1] + r[1][0])], [0.5 * (r[0][1] + r[1][0]), r[1][1] + 1e-3]];
  }

  fresh(st, j, z, r, diag) {
    const { order, init_speed: speed, accel } = this.p;
    st.x[j] = new Array(this.dim).fill(0);
    st.x[j][0] = z[0];
    st.x[j][1] = z[1];
    const p0 = zeros(this.dim, this.dim);
    p0[0][0] = r[0][0];
    p0[0][1] = r[0][1];
    p0[1][0] = r[1][0];
    p0[1][1] = r[1][1];
    const rates = [(speed * diag) ** 2, (accel * diag) ** 2];
    for (let i = 1; i <= order; i++) p0[2 * i][2 * i] = p0[2 * i + 1][2 * i + 1] = rates[i - 1];
    st.p[j] = p0;
    st.alive[j] = true;
    st.missing[j] = 0;
    st.gated[j] = 0;
  }

  measure(st, j, z, r) {
    // kalman_update for one joint; returns the squared Mahalanobis distance of the measurement.
    const { gate } = this.p;
    const x = st.x[j];
    const P = st.p[j];
    const y = [z[0] - x[0], z[1] - x[1]];
    const P2 = [[P[0][0], P[0][1]], [P[1][0], P[1][1]]];
    let Si = inv2(add(P2, r));
    const d2 = y[0] * (Si[0][0] * y[0] + Si[0][1] * y[1]) + y[1] * (Si[1][0] * y[0] + Si[1][1] * y[1]);
    if (gate !== null) Si = inv2(add(P2, scale(r, Math.max(1, d2 / gate))));
    const gain = mul(P.map((row) => row.slice(0, 2)), Si); // d × 2
    st.x[j] = x.map((v, i) => v + gain[i][0] * y[0] + gain[i][1] * y[1]);
    st.p[j] = symmetric(sub(P, mul(gain, P.slice(0, 2))));
    return d2;
  }

  step(tid, z, r, measured, t, diag) {
    const k = z.length;
    let st = this.tracks.get(tid);
    if (!st || t - st.t > this.p.max_gap_s || t <= st.t) {
      st = { x: [], p: [], alive: new Array(k).fill(false), missing: new Array(k).fill(0),
        gated: new Array(k).fill(0), t };
      for (let j = 0; j < k; j++) {
        st.x.push(new Array(this.dim).fill(0));
        st.p.push(zeros(this.dim, this.dim));
        if (measured[j]) this.fresh(st, j, z[j], r[j], diag);
      }
      this.tracks.set(tid, st);
      return st;
    }
    const dt = Math.round((t - st.t) * 1e6) / 1e6;
    const F = transition(dt, this.p.order);
    const Q = scale(processNoise(dt, this.p.order), (this.p.accel * diag) ** 2);
    const Ft = transpose(F);
    const { gate, max_coast: maxCoast, max_gated: maxGated } = this.p;
    for (let j = 0; j < k; j++) {
      st.x[j] = matVec(F, st.x[j]);
      st.p[j] = add(mul(mul(F, st.p[j]), Ft), Q);
      const upd = measured[j] && st.alive[j];
      if (upd) {
        const d2 = this.measure(st, j, z[j], r[j]);
        st.gated[j] = d2 > (gate || Infinity) ? st.gated[j] + 1 : 0;
        st.missing[j] = 0;
        if (st.gated[j] >= maxGated) st.alive[j] = false; // lost lock: restart the joint where it is measured
      } else if (st.alive[j] && !measured[j]) {
        st.missing[j] += 1;
        if (st.missing[j] > maxCoast) st.alive[j] = false;
      }
      if (measured[j] && !st.alive[j]) this.fresh(st, j, z[j], r[j], diag);
    }
    st.t = t;
    return st;
  }

  update(rows, t) {
    // rows: tracked rows whose points carry `visible` (after the keypoint threshold). Returns new rows: alive joints
    // at their filtered position and covariance, `visible` = alive, `predicted` = shown without a measurement.
    const out = rows.map((row) => {
      if (row.id === -1) return row;
      const [x1, y1, x2, y2] = row.box.map(f32);
      const diag = Math.max(Math.hypot(x2 - x1, y2 - y1), 1);
      const z = row.points.map((q) => [f32(q.x), f32(q.y)]);
      const r = row.points.map((q) => this.noise(q.cov, diag));
      const measured = row.points.map((q, j) => q.visible && z[j].every(Number.isFinite)
        && r[j].flat().every(Number.isFinite));
      const st = this.step(row.id, z, r, measured, t, diag);
      const points = row.points.map((q, j) => (st.alive[j]
        ? { ...q, x: f32(st.x[j][0]), y: f32(st.x[j][1]), visible: true, predicted: !measured[j],
          cov: [[st.p[j][0][0], st.p[j][0][1]], [st.p[j][1][0], st.p[j][1][1]]].map((c) => c.map(f32)) }
        : { ...q, visible: false, predicted: false }));
      return { ...row, points };
    });
    for (const [tid, st] of this.tracks) if (t - st.t > this.p.max_gap_s) this.tracks.delete(tid);
    return out;
  }
}

// -- the chain --------------------------------------------------------------------------------------------------------
export function thresholded(rows, keypointThreshold) {
  // apply_keypoint_threshold: a joint shows when it has a confidence, finite coordinates and clears the threshold.
  const kp = f32(keypointThreshold);
  return rows.map((row) => ({ ...row, points: row.points.map((q) => ({ ...q, predicted: false,
    visible: q.confidence > 0 && Number.isFinite(q.x) && Number.isFinite(q.y) && f32(q.confidence) >= kp })) }));
}

export class LiveChain {
  // One per viewer: ids always (the tracker keeps running when smoothing is off, so ids stay); the Kalman filter
  // restarts when smoothing is switched back on, as server mode builds a new chain when its smoother changes.
  constructor(params) {
    this.params = params;
    this.tracker = new PersonTracker(params.tracker);
    this.smoother = null;
  }

  update(rows, t, { threshold, keypointThreshold, smoothing = true }) {
    // Decoded rows (best first) at time t (seconds) → rows with `id` and per-point `visible` / `predicted`.
    const ids = this.tracker.update(rows.map((r) => r.box), rows.map((r) => r.score), t, threshold);
    const tracked = thresholded(rows.map((row, i) => ({ ...row, id: ids[i] })), keypointThreshold);
    if (!smoothing) {
      this.smoother = null;
      return tracked;
    }
    this.smoother ??= new KalmanSmoother(this.params.kalman);
    return this.smoother.update(tracked, t);
  }
}
