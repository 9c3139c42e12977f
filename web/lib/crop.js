// The network's input crop, as lgh_tf.geometry.render_crop makes it with OpenCV: strong
// down-scaling area-averaged first (cv2.resize INTER_AREA), then the affine warp (cv2.warpAffine,
// bilinear, zero fill). The arithmetic follows OpenCV's (float32 coordinates and weights, rounding
// half to even) so that the page's crops equal the Python ones pixel for pixel.
//
// An image here is {width, height, data}: data RGBA (ImageData) or RGB, `channels` 4 or 3.

const f32 = Math.fround;

// cvRound / lrint: round half to even.
export function roundHalfEven(x) {
  const r = Math.round(x);
  return (r - x === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

function saturateU8(x) {
  const r = roundHalfEven(x);
  return r < 0 ? 0 : (r > 255 ? 255 : r);
}

// Python's round() (half to even), as int(round(width * zoom)) in render_crop.
export const pyRound = roundHalfEven;

function channelsOf(image) {
  return image.channels || Math.round(image.data.length / (image.width * image.height));
}

// cv2.resize(image, (newW, newH), INTER_AREA) for a shrink; RGB out (3 channels). Only the output
// pixels in `window` [x0, y0, x1, y1] (inclusive) are computed (the rest stay 0): each is the same
// sum in the same order as OpenCV's, so a window changes no value, only the time.
export function resizeArea(image, newW, newH, window = [0, 0, newW - 1, newH - 1]) {
  const {width: W, height: H, data} = image;
  const cn = channelsOf(image);
  const [x0, y0, x1, y1] = window;
  const out = new Uint8Array(newW * newH * 3);
  const scaleX = 1 / (newW / W), scaleY = 1 / (newH / H);
  const iscaleX = roundHalfEven(scaleX), iscaleY = roundHalfEven(scaleY);
  if (Math.abs(scaleX - iscaleX) < Number.EPSILON && Math.abs(scaleY - iscaleY) < Number.EPSILON) {
    // resizeAreaFast: integer factors, an int sum times float(1 / area); a 2x2 shrink takes
    // OpenCV's SIMD path, (sum + 2) >> 2 (half up)
    const half = iscaleX === 2 && iscaleY === 2;
    const scale = f32(1 / (iscaleX * iscaleY));
    for (let dy = y0; dy <= y1; dy++) {
      for (let dx = x0; dx <= x1; dx++) {
        let r = 0, g = 0, b = 0;
        for (let sy = dy * iscaleY; sy < (dy + 1) * iscaleY; sy++) {
          let i = (sy * W + dx * iscaleX) * cn;
          for (let k = 0; k < iscaleX; k++, i += cn) {
            r += data[i]; g += data[i + 1]; b += data[i + 2];
          }
        }
        const o = (dy * newW + dx) * 3;
        if (half) {
          out[o] = (r + 2) >> 2; out[o + 1] = (g + 2) >> 2; out[o + 2] = (b + 2) >> 2;
        } else {
          out[o] = saturateU8(f32(r * scale)); out[o + 1] = saturateU8(f32(g * scale));
          out[o + 2] = saturateU8(f32(b * scale));
        }
      }
    }
    return {width: newW, height: newH, data: out, channels: 3};
  }
  const xtab = areaTable(W, newW, scaleX, x0, x1), ytab = areaTable(H, newH, scaleY, y0, y1);
  const rowLen = newW * 3;
  const buf = new Float32Array(rowLen), sum = new Float32Array(rowLen);
  const c0 = x0 * 3, c1 = (x1 + 1) * 3;
  let prevDy = ytab.di[0];
  for (let j = 0; j < ytab.length; j++) {
    const dy = ytab.di[j], beta = ytab.alpha[j], row = ytab.si[j] * W * cn;
    buf.fill(0, c0, c1);
    for (let k = 0; k < xtab.length; k++) {
      const o = xtab.di[k] * 3, i = row + xtab.si[k] * cn, alpha = xtab.alpha[k];
      buf[o] = buf[o] + f32(data[i] * alpha);
      buf[o + 1] = buf[o + 1] + f32(data[i + 1] * alpha);
      buf[o + 2] = buf[o + 2] + f32(data[i + 2] * alpha);
    }
    if (dy !== prevDy) {
      const base = prevDy * rowLen;
      for (let i = c0; i < c1; i++) {
        out[base + i] = saturateU8(sum[i]);
        sum[i] = beta * buf[i];
      }
      prevDy = dy;
    } else {
      for (let i = c0; i < c1; i++) sum[i] = sum[i] + f32(beta * buf[i]);
    }
  }
  const base = prevDy * rowLen;
  for (let i = c0; i < c1; i++) out[base + i] = saturateU8(sum[i]);
  return {width: newW, height: newH, data: out, channels: 3};
}

// OpenCV's computeResizeAreaTab: which source pixels feed each output pixel (lo..hi), with what weight.
function areaTable(ssize, dsize, scale, lo = 0, hi = dsize - 1) {
  const di = [], si = [], alpha = [];
  const push = (d, s, a) => { di.push(d); si.push(s); alpha.push(f32(a)); };
  for (let dx = lo; dx <= hi; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) push(dx, sx1 - 1, (sx1 - fsx1) / cellWidth);
    for (let sx = sx1; sx < sx2; sx++) push(dx, sx, 1.0 / cellWidth);
    if (fsx2 - sx2 > 1e-3) push(dx, sx2, Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth);
  }
  return {di: Int32Array.from(di), si: Int32Array.from(si), alpha: Float32Array.from(alpha), length: di.length};
}

// cv2.warpAffine(image, m[:2], (size, size), INTER_LINEAR, BORDER_CONSTANT 0) as uint8 RGB.
export function warpAffine(image, m, size) {
  const {width: W, height: H, data} = image;
  const cn = channelsOf(image);
  // the inverse map, as warpAffine computes it (double), then float32 as its kernels use it
  let [a, b, c, d, e, f] = [m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2]];
  let D = a * e - b * d;
  D = D !== 0 ? 1 / D : 0;
  const A11 = e * D, A22 = a * D;
  b *= -D; d *= -D;
  const b1 = -A11 * c - b * f, b2 = -d * c - A22 * f;
  const M = [A11, b, b1, d, A22, b2].map(f32);
  const out = new Uint8Array(size * size * 3);
  const rowStride = W * cn;
  for (let y = 0; y < size; y++) {
    const Mx = f32(f32(y * M[1]) + M[2]), My = f32(f32(y * M[4]) + M[5]);
    for (let x = 0; x < size; x++) {
      const sx = f32(M[0] * x + Mx), sy = f32(M[3] * x + My);  // fused multiply-add
      const ix = Math.floor(sx), iy = Math.floor(sy);
      if (ix + 1 < 0 || ix >= W || iy + 1 < 0 || iy >= H) continue;  // all four outside: zero
      const ax = f32(sx - ix), ay = f32(sy - iy);
      const o = (y * size + x) * 3;
      const i00 = iy * rowStride + ix * cn;
      const in0 = ix >= 0, in1 = ix + 1 < W, top = iy >= 0, bottom = iy + 1 < H;
      for (let ch = 0; ch < 3; ch++) {
        const p00 = in0 && top ? data[i00 + ch] : 0, p01 = in1 && top ? data[i00 + cn + ch] : 0;
        const p10 = in0 && bottom ? data[i00 + rowStride + ch] : 0;
        const p11 = in1 && bottom ? data[i00 + rowStride + cn + ch] : 0;
        const v0 = f32(p00 + ax * (p01 - p00)), v1 = f32(p10 + ax * (p11 - p10));
        out[o + ch] = saturateU8(f32(v0 + ay * f32(v1 - v0)));
      }
    }
  }
  return out;
}

// The pixels of an image (w x h) that the warp by crop_from_image `m` to size x size reads (with
// two pixels to spare for float32 rounding): [x0, y0, x1, y1], clipped to the image.
function sampledWindow(m, size, w, h) {
  const [[a, b, c], [d, e, f]] = m;
  const det = a * e - b * d;
  const xs = [], ys = [];
  for (const [u, v] of [[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]]) {
    const p = u - c, q = v - f;
    xs.push((e * p - b * q) / det);
    ys.push((a * q - d * p) / det);
  }
  const clip = (value, top) => Math.min(Math.max(value, 0), top);
  return [clip(Math.floor(Math.min(...xs)) - 2, w - 1), clip(Math.floor(Math.min(...ys)) - 2, h - 1),
          clip(Math.ceil(Math.max(...xs)) + 2, w - 1), clip(Math.ceil(Math.max(...ys)) + 2, h - 1)];
}

function matmul3(p, q) {
  const r = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[i][j] += p[i][k] * q[k][j];
  return r;
}

// lgh_tf.geometry.render_crop: the size x size crop (uint8 RGB) of `image` for crop_from_image `m`.
export function renderCrop(image, m, size) {
  const zoom = Math.sqrt(Math.abs(m[0][0] * m[1][1] - m[0][1] * m[1][0]));
  if (zoom < 0.5) {
    const {width, height} = image;
    const newW = Math.max(1, pyRound(width * zoom)), newH = Math.max(1, pyRound(height * zoom));
    const fx = newW / width, fy = newH / height;
    // inverse of resized_from_image (resized pixel centre u' = (u + 0.5) f - 0.5)
    const imageFromResized = [[1 / fx, 0, -(0.5 * fx - 0.5) / fx], [0, 1 / fy, -(0.5 * fy - 0.5) / fy], [0, 0, 1]];
    const matrix = matmul3(m, imageFromResized);
    const small = resizeArea(image, newW, newH, sampledWindow(matrix, size, newW, newH));
    return warpAffine(small, matrix, size);
  }
  return warpAffine(image, m, size);
}

// The network input: the crop as float32 in [0, 1] (numpy's float32 x / 255).
const UNIT = new Float32Array(256).map((_, i) => i / 255);
export function toInput(crop, into) {
  const input = into || new Float32Array(crop.length);
  for (let i = 0; i < crop.length; i++) input[i] = UNIT[crop[i]];
  return input;
}
