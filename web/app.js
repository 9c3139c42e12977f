// The page: pick, drop or click an example -> find the hand -> draw it; or track it in the camera.
import {loadModel} from './lib/model.js';
import {BONES, NUM_JOINTS, OneEuroFilter, boneColour, handExtent, jointColour, localize} from './lib/pose.js';

export const MAX_PIXELS = 40e6;  // the pixel cap: larger images are refused, not decoded
export const MAX_BYTES = 64 * 1024 * 1024;

const $ = (id) => document.getElementById(id);
const canvas = $('canvas');
const context = canvas.getContext('2d', {willReadFrequently: true});
const scratch = document.createElement('canvas');
const scratchContext = scratch.getContext('2d', {willReadFrequently: true});
const lgh = window.lgh = {result: null, track: [], errors: []};
let model = null;
let generation = 0;
let camera = null;

function setState(state) {
  document.body.dataset.state = state;
}

function say(text, error = false) {
  $('message').textContent = text;
  $('message').className = error ? 'error' : '';
  if (error) lgh.errors.push(text);
}

function fail(text) {
  say(text, true);
  setState('error');
}

const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;

// lgh_tf.visualize.draw_skeleton: bones in the finger colours, joints as dots outlined in black
function drawSkeleton(ctx, uv, width, height) {
  const thickness = Math.max(1, Math.round(Math.max(width, height) / 160));
  ctx.lineCap = 'round';
  ctx.lineWidth = thickness;
  for (const [parent, child] of BONES) {
    ctx.strokeStyle = rgb(boneColour(parent, child));
    ctx.beginPath();
    ctx.moveTo(uv[parent][0], uv[parent][1]);
    ctx.lineTo(uv[child][0], uv[child][1]);
    ctx.stroke();
  }
  ctx.lineWidth = 1;
  ctx.strokeStyle = 'black';
  for (let j = 0; j < NUM_JOINTS; j++) {
    ctx.fillStyle = rgb(jointColour(j));
    ctx.beginPath();
    ctx.arc(uv[j][0], uv[j][1], thickness + 1, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
}

function showStats(hand, ms, passes) {
  $('status').textContent = hand.detected ? 'found' : `not found (${hand.status})`;
  $('confidence').textContent = hand.confidence.toFixed(3);
  $('time').textContent = `${ms.toFixed(1)} ms per image`;
  $('passes').textContent = passes;
}

// ------------------------------------------------------------------------------------------------
// Images
// ------------------------------------------------------------------------------------------------

function decode(blob, name) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.onload = () => resolve({image, url});
    image.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error(`${name} is not an image this browser can decode (${blob.type || 'unknown type'}, ` +
                       `${blob.size} bytes): choose a PNG, JPEG or WebP picture`));
    };
    image.src = url;
  });
}

async function analyseBlob(blob, name) {
  const mine = ++generation;
  stopCamera();
  setState('busy');
  say(`${name}: looking for the hand...`);
  try {
    if (!model) throw new Error('the model is not loaded');
    if (blob.size > MAX_BYTES) {
      throw new Error(`${name} is too large a file (${(blob.size / 2 ** 20).toFixed(0)} MB; at most ` +
                      `${MAX_BYTES / 2 ** 20} MB)`);
    }
    const {image, url} = await decode(blob, name);
    try {
      const width = image.naturalWidth, height = image.naturalHeight;
      if (!width || !height) throw new Error(`${name} has no pixels`);
      if (width * height > MAX_PIXELS) {
        throw new Error(`${name} is too large an image: ${width}x${height} = ${(width * height / 1e6).toFixed(1)} ` +
                        `megapixels (at most ${MAX_PIXELS / 1e6}); scale it down first`);
      }
      canvas.width = width;
      canvas.height = height;
      context.drawImage(image, 0, 0);
    } finally {
      URL.revokeObjectURL(url);
    }
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    const start = performance.now();
    const hand = await localize(model.run, pixels, model.size);
    const ms = performance.now() - start;
    if (mine !== generation) return;
    drawSkeleton(context, hand.uv, pixels.width, pixels.height);
    showStats(hand, ms, hand.iterations);
    lgh.result = {
      image: name, image_size: [pixels.width, pixels.height], uv: hand.uv, uv_crop: hand.uvCrop,
      depth_relative: hand.depth, confidence: hand.confidence, joint_confidence: hand.jointConfidence,
      spread_px: hand.spreadPx, status: hand.status, detected: hand.detected, iterations: hand.iterations,
      squares: hand.squares, hand_size_px: hand.handSizePx, ms,
    };
    $('result').textContent = JSON.stringify(lgh.result, null, 1);
    say(hand.detected ? `${name}: hand found (${hand.iterations} passes)` :
      `${name}: no confident hand (${hand.status}); the joints drawn are probably wrong`);
    setState('done');
  } catch (error) {
    if (mine === generation) fail(error.message);
  }
}

async function analyseUrl(url, name) {
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
    await analyseBlob(await response.blob(), name);
  } catch (error) {
    fail(error.message);
  }
}

// ------------------------------------------------------------------------------------------------
// Camera: frame t is searched from frame t-1's joints (one pass), as lgh_tf.video.track does
// ------------------------------------------------------------------------------------------------

function stopCamera() {
  if (!camera) return;
  camera.running = false;
  if (camera.clock) camera.clock.stop();
  for (const t of camera.stream.getTracks()) t.stop();
  camera = null;
  $('camera').textContent = 'Start camera';
}

async function startCamera() {
  generation++;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail('No camera here: this browser gives cameras to secure pages only (https:// or http://localhost)');
    return;
  }
  let stream;
  try {
    say('asking for the camera...');
    stream = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480}}, audio: false});
  } catch (error) {
    const why = {
      NotAllowedError: 'camera permission denied: allow the camera for this page (the icon in the address bar) ' +
                       'and press Start camera again',
      NotFoundError: 'no camera found',
      NotReadableError: 'the camera is in use by another program',
    }[error.name] || `the camera could not be opened (${error.name}: ${error.message})`;
    fail(why);
    return;
  }
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  await video.play();
  camera = {stream, video, running: true, prior: null, filter: new OneEuroFilter(), frames: 0, times: []};
  lgh.track = [];
  $('camera').textContent = 'Stop camera';
  say('camera: tracking (the shipped model knows synthetic hands only: expect it to miss real ones)');
  setState('camera');
  cameraLoop(camera);
}

// The camera's frame clock: a requestVideoFrameCallback chain that stays registered, so a frame the
// camera presents while the page is busy with the previous one is noticed at the next rendering step
// (not one camera period later, as a callback registered after the work would be). `next()` resolves
// at once when a frame newer than `seen` has been presented, else at the next one. Without
// requestVideoFrameCallback: every animation frame (the page may then process a frame twice).
function frameClock(video) {
  const clock = {presented: 0, waiting: null, stopped: false};
  const tick = (now, metadata) => {
    clock.presented = metadata ? metadata.presentedFrames : clock.presented + 1;
    if (clock.waiting) {
      clock.waiting();
      clock.waiting = null;
    }
    if (!clock.stopped) request();
  };
  const request = () => (video.requestVideoFrameCallback ? video.requestVideoFrameCallback(tick)
    : requestAnimationFrame(() => tick()));
  request();
  clock.next = (seen) => (clock.presented > seen ? Promise.resolve()
    : new Promise((resolve) => { clock.waiting = resolve; }));
  clock.stop = () => {
    clock.stopped = true;
    if (clock.waiting) clock.waiting();
  };
  return clock;
}

// The newest camera frame not processed yet, as soon as there is one: a VideoFrame where the browser
// has them (its timestamp tells a new frame from the one just processed without waiting for a
// rendering step), else the video element after the clock's next frame. null once stopped.
async function nextFrame(cam) {
  const {video, clock} = cam;
  while (cam.running) {
    if (!video.videoWidth || !video.videoHeight) {
      await clock.next(clock.presented);
      continue;
    }
    if (typeof VideoFrame === 'undefined') {
      await clock.next(cam.seen);
      cam.seen = clock.presented;
      return cam.running ? {source: video, width: video.videoWidth, height: video.videoHeight, close() {}} : null;
    }
    let frame = null;
    try {
      frame = new VideoFrame(video);
    } catch {
      // no frame to wrap yet
    }
    if (frame && frame.timestamp !== cam.timestamp) {
      cam.timestamp = frame.timestamp;
      return {source: frame, width: frame.displayWidth, height: frame.displayHeight, close: () => frame.close()};
    }
    if (frame) frame.close();
    await clock.next(clock.presented);
  }
  return null;
}

const yieldTask = () => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => resolve();
  channel.port2.postMessage(null);
});

async function cameraLoop(cam) {
  const start = performance.now();
  cam.clock = frameClock(cam.video);
  cam.seen = 0;
  cam.renders = 0;  // rendering steps (each shows what the canvas holds then)
  const counting = () => {
    cam.renders++;
    if (cam.running) requestAnimationFrame(counting);
  };
  requestAnimationFrame(counting);
  let lastEnd = null;
  while (cam.running) {
    const tWait = performance.now();
    const frame = await nextFrame(cam);
    if (!frame) break;
    const {width, height} = frame;
    if (scratch.width !== width || scratch.height !== height) {
      scratch.width = width;
      scratch.height = height;
    }
    const tRead = performance.now();
    try {
      scratchContext.drawImage(frame.source, 0, 0);
    } finally {
      frame.close();
    }
    const tDrawn = performance.now();
    const pixels = scratchContext.getImageData(0, 0, width, height);
    const t0 = performance.now();
    let hand, relocalised = false;
    if (cam.prior) {
      hand = await localize(model.run, pixels, model.size, {priorUv: cam.prior, iterations: 1});
      if (!hand.detected) {
        hand = await localize(model.run, pixels, model.size);
        relocalised = true;
      }
    } else {
      hand = await localize(model.run, pixels, model.size);
      relocalised = cam.frames > 0;
    }
    const ms = performance.now() - t0;
    const tDraw = performance.now();
    if (!cam.running) break;
    const t = (t0 - start) / 1000;
    let shown = null;
    if (hand.detected) {
      cam.prior = hand.uv;
      shown = cam.filter.filter(hand.uv, t, Math.max(handExtent(hand.uv), 1));
    } else {
      cam.prior = null;
      cam.filter.reset();
    }
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    context.drawImage(scratch, 0, 0);  // the frame the joints are from
    if (shown) drawSkeleton(context, shown, width, height);
    cam.times.push(performance.now());
    if (cam.times.length > 30) cam.times.shift();
    const fps = cam.times.length > 1 ? (cam.times.length - 1) / ((cam.times.at(-1) - cam.times[0]) / 1000) : 0;
    if (cam.frames === 0 || performance.now() - (cam.shownAt ?? 0) > 250) {  // text 4 times a second: less layout
      cam.shownAt = performance.now();
      $('fps').textContent = `${fps.toFixed(1)} frames/s`;
      showStats(hand, ms, `${hand.iterations} (${hand.source}${relocalised ? ', searched again' : ''})`);
    }
    const tEnd = performance.now();
    // where a frame's time goes (ms): waiting for it, reading it out of the video, the crop search,
    // drawing it; `busy` is the sum of the last three
    const phases = {wait: lastEnd === null ? 0 : tRead - lastEnd, waitCall: tRead - tWait, video: tDrawn - tRead, read: t0 - tDrawn, infer: ms,
      draw: tEnd - tDraw, busy: tEnd - tRead};
    lastEnd = tEnd;
    lgh.track.push({
      frame: cam.frames, time: t, detected: hand.detected, status: hand.status, source: hand.source, relocalised,
      confidence: hand.confidence, uv: shown, uv_raw: hand.uv, ms, fps, size: [width, height], phases,
      presented: cam.clock.presented, renders: cam.renders,
    });
    if (lgh.track.length > 2000) lgh.track.shift();
    cam.frames++;
    // a task boundary: input events (Stop camera) and the rendering step that shows this frame may run
    await yieldTask();
  }
  cam.clock.stop();
}

// ------------------------------------------------------------------------------------------------
// Wiring
// ------------------------------------------------------------------------------------------------

async function main() {
  const drop = $('drop');
  $('file').addEventListener('change', (event) => {
    const file = event.target.files[0];
    if (file) analyseBlob(file, file.name);
  });
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    const file = event.dataTransfer.files[0];
    if (file) analyseBlob(file, file.name);
  });
  $('camera').addEventListener('click', () => (camera ? stopCamera() : startCamera()));
  lgh.analyseBlob = analyseBlob;
  lgh.analyseUrl = analyseUrl;

  let examples = [];
  try {
    examples = await (await fetch('assets/examples.json')).json();
  } catch {
    say('no examples: run `npm ci` in web/ (it copies the model and the examples into web/assets/)', true);
  }
  for (const name of examples) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = name;
    button.disabled = true;
    button.addEventListener('click', () => analyseUrl(`assets/examples/${name}`, name));
    $('examples').appendChild(button);
  }
  try {
    const start = performance.now();
    // threads where the page is cross-origin isolated (python tools/serve_web.py), one thread elsewhere
    const threads = self.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, 4) : 0;
    model = await loadModel({threads: Number(new URLSearchParams(location.search).get('threads') ?? threads)});
    lgh.model = {size: model.size, description: model.description, loadMs: performance.now() - start};
    lgh.run = model.run;  // the bare network, for tools/bench_web.py
    // warm-up: the first runs pack the weights and compile the kernels (hundreds of ms each)
    const zeros = new Float32Array(model.size * model.size * 3);
    for (let i = 0; i < 3; i++) await model.run(zeros);
    lgh.model.warmMs = performance.now() - start - lgh.model.loadMs;
    $('runtime').textContent = `${model.description} (${model.size}x${model.size} input), loaded in ` +
      `${(lgh.model.loadMs / 1000).toFixed(1)} s`;
  } catch (error) {
    $('runtime').textContent = 'not loaded';
    fail(`the model could not be loaded: ${error.message} (run \`npm ci\` in web/ first)`);
    return;
  }
  for (const button of document.querySelectorAll('#examples button, #camera')) button.disabled = false;
  say('ready: drop an image, choose one, click an example, or start the camera');
  setState('ready');
  const params = new URLSearchParams(location.search);
  if (params.get('example')) analyseUrl(`assets/examples/${params.get('example')}`, params.get('example'));
  else if (params.has('camera')) startCamera();
}

main();
