// The hand search and its geometry, ported from lgh_tf (geometry.py, localize.py, video.py) so that
// the page finds the hand as `python main.py --mode=predict` does. Pure functions; the network is
// passed in as `run(input Float32Array (S*S*3)) -> Promise<{uv, depth, heatmaps}>`.

import {renderCrop, toInput} from './crop.js';

export const NUM_JOINTS = 21;
export const ROOT = 12;
export const CROP_MARGIN = 1.2;
export const MIN_HAND_EXTENT = 30.0;
export const CONFIDENCE_RADIUS = 2.0;
export const MIN_CONFIDENCE = 0.3;
export const MIN_HAND_PX = 24.0;
export const SEARCH_ITERATIONS = 4;
export const SEARCH_TOLERANCE = 0.05;

// RHD order: 0 wrist, then thumb, index, middle, ring, little, each tip -> MCP (lgh_tf.data.schema).
export const FINGERS = ['thumb', 'index', 'middle', 'ring', 'little'];
export const PARENTS = [-1];
for (let j = 1; j < NUM_JOINTS; j++) PARENTS.push((j - 1) % 4 !== 3 ? j + 1 : 0);
export const BONES = PARENTS.slice(1).map((p, i) => [p, i + 1]);
// lgh_tf.visualize.FINGER_COLOURS (RGB) and PALM_COLOUR
export const FINGER_COLOURS = {
  thumb: [230, 40, 40], index: [240, 190, 20], middle: [40, 190, 60], ring: [40, 120, 240], little: [200, 50, 220],
};
export const PALM_COLOUR = [150, 150, 150];
export function jointFinger(j) {
  return j >= 1 && j < NUM_JOINTS ? FINGERS[Math.floor((j - 1) / 4)] : null;
}
export function jointColour(j) {
  return FINGER_COLOURS[jointFinger(j)] || PALM_COLOUR;
}
export function boneColour(parent, child) {
  return FINGER_COLOURS[jointFinger(child) || jointFinger(parent)] || PALM_COLOUR;
}

// geometry.keypoint_square: centred on the joints' box, side margin * max(2 * max |uv - uv_root|, 30)
export function keypointSquare(uv, margin = CROP_MARGIN, minExtent = MIN_HAND_EXTENT) {
  const [ru, rv] = uv[ROOT];
  let reach = 0, minU = Infinity, minV = Infinity, maxU = -Infinity, maxV = -Infinity;
  for (const [u, v] of uv) {
    reach = Math.max(reach, Math.abs(u - ru), Math.abs(v - rv));
    minU = Math.min(minU, u); maxU = Math.max(maxU, u);
    minV = Math.min(minV, v); maxV = Math.max(maxV, v);
  }
  return {centre: [0.5 * (minU + maxU), 0.5 * (minV + maxV)], side: margin * Math.max(2.0 * reach, minExtent)};
}

// geometry.image_square: the whole image padded to a square
export function imageSquare(width, height) {
  return {centre: [0.5 * (width - 1), 0.5 * (height - 1)], side: Math.max(width, height)};
}

// geometry.shift_inside: a square that fits is shifted inside the image, a larger one centred
export function shiftInside(centre, side, width, height) {
  const last = [width - 1, height - 1];
  return centre.map((c, a) => {
    const low = 0.5 * side, high = last[a] - 0.5 * side;
    return side <= last[a] ? Math.min(Math.max(c, low), Math.max(low, high)) : 0.5 * last[a];
  });
}

export function squareCropMatrix(centre, side, size) {
  const zoom = size / side;
  return [[zoom, 0, 0.5 * (size - 1) - zoom * centre[0]], [0, zoom, 0.5 * (size - 1) - zoom * centre[1]], [0, 0, 1]];
}

export function invertAffine(m) {
  const [[a, b, c], [d, e, f]] = m;
  const invDet = 1.0 / (a * e - b * d);
  const a_ = e * invDet, b_ = -b * invDet, d_ = -d * invDet, e_ = a * invDet;
  return [[a_, b_, -(a_ * c + b_ * f)], [d_, e_, -(d_ * c + e_ * f)], [0, 0, 1]];
}

export function mapPoints(m, points) {
  return points.map(([u, v]) => [u * m[0][0] + v * m[0][1] + m[0][2], u * m[1][0] + v * m[1][1] + m[1][2]]);
}

function keypointSquareInside(uv, margin, width, height) {
  const {centre, side} = keypointSquare(uv, margin);
  return {centre: shiftInside(centre, side, width, height), side};
}

function stable(previous, current, tolerance) {
  const moved = Math.max(Math.abs(current.centre[0] - previous.centre[0]), Math.abs(current.centre[1] - previous.centre[1]));
  return moved <= tolerance * previous.side && Math.abs(current.side - previous.side) <= tolerance * previous.side;
}

// localize.heatmap_confidence for one crop: heatmaps (h*w*J, logits) and the crop joints ->
// {joint: [confidence], spread: [px]}
export function heatmapConfidence(heatmaps, uvCrop, inputSize, cells, radius = CONFIDENCE_RADIUS) {
  const J = uvCrop.length, P = cells * cells, stride = inputSize / cells;
  const joint = [], spread = [];
  for (let j = 0; j < J; j++) {
    let top = -Infinity;
    for (let p = 0; p < P; p++) top = Math.max(top, heatmaps[p * J + j]);
    let total = 0;
    const prob = new Float64Array(P);
    for (let p = 0; p < P; p++) total += (prob[p] = Math.exp(heatmaps[p * J + j] - top));
    const cu = uvCrop[j][0] / stride, cv = uvCrop[j][1] / stride;
    let within = 0, mu = 0, mv = 0, m2 = 0;
    for (let p = 0; p < P; p++) {
      const q = prob[p] / total, col = p % cells, row = Math.floor(p / cells);
      if ((col - cu) ** 2 + (row - cv) ** 2 <= radius * radius) within += q;
      mu += q * col; mv += q * row; m2 += q * (col * col + row * row);
    }
    joint.push(within);
    spread.push(stride * Math.sqrt(Math.max(m2 - mu * mu - mv * mv, 0)));
  }
  return {joint, spread};
}

const mean = (values) => values.reduce((s, v) => s + v, 0) / values.length;

// localize.predict_crops for one crop
export async function predictCrop(run, image, matrix, size) {
  const crop = renderCrop(image, matrix, size);
  const out = await run(toInput(crop));
  const uvCrop = [];
  for (let j = 0; j < NUM_JOINTS; j++) uvCrop.push([out.uv[2 * j], out.uv[2 * j + 1]]);
  const cells = Math.round(Math.sqrt(out.heatmaps.length / NUM_JOINTS));
  const {joint, spread} = heatmapConfidence(out.heatmaps, uvCrop, size, cells);
  return {
    cropFromImage: matrix, uv: mapPoints(invertAffine(matrix), uvCrop), uvCrop, depth: Array.from(out.depth),
    jointConfidence: joint, confidence: mean(joint), spreadPx: mean(spread),
  };
}

// localize.localize (right hand; no box): the whole image first, or the training crop about
// `priorUv`, then the training crop about the predicted joints until it stops moving.
export async function localize(run, image, size, {priorUv = null, iterations = SEARCH_ITERATIONS,
  tolerance = SEARCH_TOLERANCE, margin = CROP_MARGIN, minConfidence = MIN_CONFIDENCE, minHandPx = MIN_HAND_PX} = {}) {
  const {width, height} = image;
  const start = priorUv ? keypointSquareInside(priorUv, margin, width, height) : imageSquare(width, height);
  const squares = [start];
  const passes = Math.max(1, iterations);
  let result = null;
  for (let step = 0; step < passes; step++) {
    const square = squares[squares.length - 1];
    result = await predictCrop(run, image, squareCropMatrix(square.centre, square.side, size), size);
    result.iterations = step + 1;
    if (step + 1 === passes) break;
    const next = keypointSquareInside(result.uv, margin, width, height);
    if (stable(square, next, tolerance)) break;
    squares.push(next);
  }
  let handSize = 0;
  for (const a of [0, 1]) {
    const values = result.uv.map((p) => p[a]);
    handSize = Math.max(handSize, Math.max(...values) - Math.min(...values));
  }
  const status = result.confidence < minConfidence ? 'low confidence' : (handSize < minHandPx ? 'too small' : 'ok');
  return {
    ...result, source: priorUv ? 'prior' : 'search', handSizePx: handSize, status, detected: status === 'ok',
    squares: squares.slice(0, result.iterations).map((s) => [s.centre[0], s.centre[1], s.side]),
  };
}

// video.OneEuroFilter (Casiez et al. 2012): speed measured in hand sizes per second
export class OneEuroFilter {
  constructor({minCutoff = 1.0, beta = 1.0, dCutoff = 1.0} = {}) {
    Object.assign(this, {minCutoff, beta, dCutoff});
    this.reset();
  }
  reset() {
    this.x = null; this.dx = null; this.t = null;
  }
  static alpha(cutoff, dt) {
    const tau = 1.0 / (2.0 * Math.PI * cutoff);
    return 1.0 / (1.0 + tau / dt);
  }
  filter(points, t, unit = 1.0) {
    if (this.x === null) {
      this.x = points.map((p) => p.slice()); this.dx = points.map((p) => p.map(() => 0)); this.t = t;
      return points.map((p) => p.slice());
    }
    let dt = t - this.t;
    if (dt <= 0) dt = 1.0 / 30.0;
    const aD = OneEuroFilter.alpha(this.dCutoff, dt);
    this.x = this.x.map((previous, j) => {
      this.dx[j] = previous.map((v, k) => aD * (points[j][k] - v) / dt + (1 - aD) * this.dx[j][k]);
      const speed = Math.hypot(...this.dx[j]) / Math.max(unit, 1e-12);
      const a = OneEuroFilter.alpha(this.minCutoff + this.beta * speed, dt);
      return previous.map((v, k) => a * points[j][k] + (1 - a) * v);
    });
    this.t = t;
    return this.x.map((p) => p.slice());
  }
}

export function handExtent(uv) {
  let extent = 0;
  for (const a of [0, 1]) {
    const values = uv.map((p) => p[a]);
    extent = Math.max(extent, Math.max(...values) - Math.min(...values));
  }
  return extent;
}
