// The shipped TFLite model in LiteRT.js (WebAssembly, XNNPACK on the CPU), run one crop at a time
// through its `predict_float` signature: images float32 (1, S, S, 3) in [0, 1] -> uv, depth, heatmaps.
import {Tensor, loadAndCompile, loadLiteRt} from '@litertjs/core';

export const WASM_DIR = new URL('../node_modules/@litertjs/core/wasm/', import.meta.url).href;
export const MODEL_URL = new URL('../assets/model_int8.tflite', import.meta.url).href;
const SIGNATURE = 'predict_float';

export async function loadModel({modelUrl = MODEL_URL, wasmDir = WASM_DIR, threads = false} = {}) {
  await loadLiteRt(wasmDir, {threads});
  const compiled = await loadAndCompile(modelUrl, {accelerator: 'wasm'});
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
  return {run, size, description: `LiteRT.js ${SIGNATURE}, ${modelUrl.split('/').pop()}`};
}
