// `npm ci` runs this (postinstall): copies what the page serves from outside web/ into web/assets/
// (git-ignored): the shipped model and the examples. The LiteRT.js runtime and its wasm files are
// served from web/node_modules/@litertjs/ as npm installed them. Nothing is fetched from the network.
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const web = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(web);
const assets = path.join(web, 'assets');
const model = path.join(root, 'lgh_tf', 'demo', 'synthetic_demo', '1', 'tflite', 'model_float32.tflite');

// The shipped .tflite has a free batch size (shape_signature -1), which LiteRT.js cannot resize:
// the page's copy has it fixed to 1 in place (the same ops, weights and bytes otherwise).
export function fixBatch(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (at) => view.getUint32(at, true);
  const field = (table, index) => {  // the position of a table's field, or null when absent
    const vtable = table - view.getInt32(table, true);
    if (4 + 2 * index >= view.getUint16(vtable, true)) return null;
    const offset = view.getUint16(vtable + 4 + 2 * index, true);
    return offset ? table + offset : null;
  };
  const deref = (at) => at + u32(at);
  const tables = (vectorAt) => {
    const vector = deref(vectorAt);
    return Array.from({length: u32(vector)}, (_, i) => deref(vector + 4 + 4 * i));
  };
  let fixed = 0;
  for (const subgraph of tables(field(u32(0), 2))) {  // Model.subgraphs
    for (const tensor of tables(field(subgraph, 0))) {  // SubGraph.tensors
      const signature = field(tensor, 7);  // Tensor.shape_signature
      if (signature === null) continue;
      const vector = deref(signature);
      if (u32(vector) > 0 && view.getInt32(vector + 4, true) === -1) {
        view.setInt32(vector + 4, 1, true);
        fixed++;
      }
    }
  }
  return fixed;
}

fs.mkdirSync(path.join(assets, 'examples'), {recursive: true});
const bytes = new Uint8Array(fs.readFileSync(model));
const fixed = fixBatch(bytes);
if (!fixed) throw new Error(`${model}: no tensor with a free batch size; is it the shipped model?`);
fs.writeFileSync(path.join(assets, 'model_float32.tflite'), bytes);
const examples = fs.readdirSync(path.join(root, 'examples')).filter((name) => /^hand\d+\.png$/.test(name)).sort();
for (const name of examples) fs.copyFileSync(path.join(root, 'examples', name), path.join(assets, 'examples', name));
fs.writeFileSync(path.join(assets, 'examples.json'), JSON.stringify(examples) + '\n');
console.log(`web/assets: the shipped model (batch fixed to 1 in ${fixed} tensors) and ${examples.length} examples`);
