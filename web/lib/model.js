// The shipped TFLite model in LiteRT.js (WebAssembly, XNNPACK on the CPU), run one crop at a time
// through its `predict_float` signature: images float32 (1, S, S, 3) in [0, 1] -> uv, depth, heatmaps.
import {Tensor, loadAndCompile, loadLiteRt} from '@litertjs/core';

export const WASM_DIR = new URL('../node_modules/@litertjs/core/wasm/', import.meta.url).href;
export const MODEL_URL = new URL('../assets/model_float32.tflite', import.meta.url).href;
const SIGNATURE = 'predict_float';

// threads: the threaded WebAssembly build (needs a cross-origin isolated page: SharedArrayBuffer)
export async function loadModel({modelUrl = MODEL_URL, wasmDir = WASM_DIR, threads = 0} = {}) {
  await loadLiteRt(wasmDir, {threads: threads > 1});
  const options = {accelerator: 'wasm'};
  if (threads > 1) options.cpuOptions = {numThreads: threads};
  const compiled = await loadAndCompile(modelUrl, options);
  const runner = compiled.signatures[SIGNATURE] || compiled;
  const input = runner.getInputDetails()[0];
  const size = input.shape[1] > 0 ? input.shape[1] : input.shape[2];
  async function run(pixels) {
    const tensor = new Tensor(pixels, [1, size, size, 3]);
    let outputs;
    try {
      outputs = await runner.run({[input.name]: tensor});
    } finally {
      tensor.delete();
    }
    const result = {};
    for (const [name, value] of Object.entries(outputs)) {
      result[name] = Float32Array.from(value.toTypedArray());
      value.delete();
    }
    return result;
  }
  const how = threads > 1 ? `${threads} threads` : 'one thread';
  return {run, size, description: `LiteRT.js (WebAssembly, ${how}), ${modelUrl.split('/').pop()}`};
}
