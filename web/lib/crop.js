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

// cv2.resize(image, (newW, newH), INTER_AREA) for a shrink; RGB out (3 channels).
export function resizeArea(image, newW, newH) {
  const {width: W, height: H, data} = image;
  const cn = channelsOf(image);
  const out = new Uint8Array(newW * newH * 3);
  const scaleX = 1 / (newW / W), scaleY = 1 / (newH / H);
  const iscaleX = roundHalfEven(scaleX), iscaleY = roundHalfEven(scaleY);
  if (Math.abs(scaleX - iscaleX) < Number.EPSILON && Math.abs(scaleY - iscaleY) < Number.EPSILON) {
    // resizeAreaFast: integer factors, an int sum times float(1 / area)
    // a 2x2 shrink takes OpenCV's SIMD path: (sum + 2) >> 2, half up
    const half = iscaleX === 2 && iscaleY === 2;
    const scale = f32(1 / (iscaleX * iscaleY));
    for (let dy = 0; dy < newH; dy++) {
      for (let dx = 0; dx < newW; dx++) {
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let sy = dy * iscaleY; sy < (dy + 1) * iscaleY; sy++) {
            for (let sx = dx * iscaleX; sx < (dx + 1) * iscaleX; sx++) sum += data[(sy * W + sx) * cn + c];
          }
          out[(dy * newW + dx) * 3 + c] = half ? (sum + 2) >> 2 : saturateU8(f32(sum * scale));
        }
      }
    }
    return {width: newW, height: newH, data: out, channels: 3};
  }
  const xtab = areaTable(W, newW, scaleX), ytab = areaTable(H, newH, scaleY);
  const rowLen = newW * 3;
  const buf = new Float32Array(rowLen), sum = new Float32Array(rowLen);
  let prevDy = ytab[0].di;
  for (const {di: dy, si: sy, alpha: beta} of ytab) {
    buf.fill(0);
    const row = sy * W * cn;
    for (const {di: dx, si: sx, alpha} of xtab) {
      for (let c = 0; c < 3; c++) {
        buf[dx * 3 + c] = f32(buf[dx * 3 + c] + f32(data[row + sx * cn + c] * alpha));
      }
    }
    if (dy !== prevDy) {
      for (let i = 0; i < rowLen; i++) {
        out[prevDy * rowLen + i] = saturateU8(sum[i]);
        sum[i] = f32(beta * buf[i]);
      }
      prevDy = dy;
    } else {
      for (let i = 0; i < rowLen; i++) sum[i] = f32(sum[i] + f32(beta * buf[i]));
    }
  }
  for (let i = 0; i < rowLen; i++) out[prevDy * rowLen + i] = saturateU8(sum[i]);
  return {width: newW, height: newH, data: out, channels: 3};
}

// OpenCV's computeResizeAreaTab: which source pixels feed each output pixel, with what weight.
function areaTable(ssize, dsize, scale) {
  const tab = [];
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) tab.push({di: dx, si: sx1 - 1, alpha: f32((sx1 - fsx1) / cellWidth)});
    for (let sx = sx1; sx < sx2; sx++) tab.push({di: dx, si: sx, alpha: f32(1.0 / cellWidth)});
    if (fsx2 - sx2 > 1e-3) {
      tab.push({di: dx, si: sx2, alpha: f32(Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth)});
    }
  }
  return tab;
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
  const px = (ix, iy, ch) => (ix >= 0 && ix < W && iy >= 0 && iy < H) ? data[(iy * W + ix) * cn + ch] : 0;
  for (let y = 0; y < size; y++) {
    const Mx = f32(f32(y * M[1]) + M[2]), My = f32(f32(y * M[4]) + M[5]);
    for (let x = 0; x < size; x++) {
      const sx = f32(M[0] * x + Mx), sy = f32(M[3] * x + My);  // fused multiply-add
      const ix = Math.floor(sx), iy = Math.floor(sy);
      const o = (y * size + x) * 3;
      if (ix + 1 < 0 || ix >= W || iy + 1 < 0 || iy >= H) continue;  // all four outside: zero
      const ax = f32(sx - ix), ay = f32(sy - iy);
      for (let ch = 0; ch < 3; ch++) {
        const p00 = px(ix, iy, ch), p01 = px(ix + 1, iy, ch);
        const p10 = px(ix, iy + 1, ch), p11 = px(ix + 1, iy + 1, ch);
        const v0 = f32(p00 + ax * (p01 - p00)), v1 = f32(p10 + ax * (p11 - p10));
        out[o + ch] = saturateU8(f32(v0 + ay * f32(v1 - v0)));
      }
    }
  }
  return out;
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
    const small = resizeArea(image, newW, newH);
    const fx = newW / width, fy = newH / height;
    // inverse of resized_from_image (resized pixel centre u' = (u + 0.5) f - 0.5)
    const imageFromResized = [[1 / fx, 0, -(0.5 * fx - 0.5) / fx], [0, 1 / fy, -(0.5 * fy - 0.5) / fy], [0, 0, 1]];
    return warpAffine(small, matmul3(m, imageFromResized), size);
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
