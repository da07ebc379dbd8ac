// Canvas overlay: the schema's skeleton (left blue, right orange, centre green), vertices and 1σ (green) / 2σ (red)
// uncertainty ellipses from each joint's covariance, in the server's colours (the manifest's schema.colors), and
// each tracked person's #id. Coordinates are the un-mirrored frame's; only the display may be mirrored
// (a CSS transform on the video and canvas together), as in server mode.

function edgeColour(schema, a, b) {
  return schema.colors[schema.sides[a] === schema.sides[b] ? schema.sides[a] : "center"];
}

export function ellipse(cov, sigmas) {
  // Axes (radii) and angle of the sigmas-σ ellipse of a 2×2 covariance; null when it is not a valid covariance.
  const [[a, b], [, d]] = cov;
  if (![a, b, d].every(Number.isFinite)) return null;
  const mid = (a + d) / 2;
  const diff = Math.sqrt(((a - d) / 2) ** 2 + b * b);
  const l1 = mid + diff;
  const l2 = mid - diff;
  if (!(l2 > 0)) return null;
  return { rx: sigmas * Math.sqrt(l1), ry: sigmas * Math.sqrt(l2), angle: 0.5 * Math.atan2(2 * b, a - d) };
}

export function drawRows(ctx, rows, schema, keypointThreshold, scale = 1, mirrored = false) {
  // A point's `visible` (temporal.js: thresholded, or a smoothed joint it predicts) wins over the threshold here.
  const shown = (p) => p.visible
    ?? (p.confidence > 0 && p.confidence >= keypointThreshold && Number.isFinite(p.x + p.y));
  ctx.lineWidth = 2 * scale;
  for (const row of rows) {
    for (const [a, b] of schema.edges) {
      const [p, q] = [row.points[a], row.points[b]];
      if (!shown(p) || !shown(q)) continue;
      ctx.strokeStyle = edgeColour(schema, a, b);
      ctx.beginPath();
      ctx.moveTo(p.x, p.y);
      ctx.lineTo(q.x, q.y);
      ctx.stroke();
    }
    row.points.forEach((p, j) => {
      if (!shown(p)) return;
      const colour = schema.colors[schema.sides[j]] ?? schema.colors.center;
      for (const [sigmas, ring] of [[1, schema.ellipse_colors[0]], [2, schema.ellipse_colors[1]]]) {
        const e = ellipse(p.cov, sigmas);
        if (!e) continue;
        ctx.strokeStyle = ring;
        ctx.beginPath();
        ctx.ellipse(p.x, p.y, e.rx, e.ry, e.angle, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.fillStyle = colour;
      ctx.beginPath();
      ctx.arc(p.x, p.y, 3 * scale, 0, 2 * Math.PI);
      ctx.fill();
    });
  }
  for (const row of rows) if (row.id >= 0) drawId(ctx, row, scale, mirrored); // text last: nothing hides it
}

function drawId(ctx, row, scale, mirrored) {
  // "#id" above the box's centre, as server mode's box labels; un-mirrored when the view is (the canvas is flipped
  // by CSS, so text is drawn flipped to read right).
  const [x1, y1, x2] = row.box;
  ctx.save();
  ctx.translate((x1 + x2) / 2, Math.max(y1 - 4 * scale, 14 * scale));
  if (mirrored) ctx.scale(-1, 1);
  ctx.font = `bold ${Math.round(14 * scale)}px sans-serif`;
  ctx.textAlign = "center";
  ctx.lineWidth = 3 * scale;
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#fff";
  ctx.strokeText(`#${row.id}`, 0, 0);
  ctx.fillText(`#${row.id}`, 0, 0);
  ctx.restore();
}
