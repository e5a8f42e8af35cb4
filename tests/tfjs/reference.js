// The reference runtime for xfv's TF.js converter: runs a TF.js graph model from local files on
// TensorFlow.js's pure-JavaScript CPU backend and writes one output tensor.
//
//   node reference.js MODEL.json OUTPUT_NODE INPUT.f32 N H W C OUT.f32
//
// INPUT.f32 holds N x H x W x C little-endian float32 values (what the graph's input takes);
// OUT.f32 receives the output's float32 values, row-major. Prints the output's shape as JSON.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function localFiles(modelPath) {
  // A TF.js IOHandler reading model.json and its weight shards from disk.
  return {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        specs.push(...group.weights);
        for (const shard of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(modelPath), shard)));
      }
      const bytes = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
        weightSpecs: specs,
        weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      };
    },
  };
}

async function main() {
  const [modelPath, outputNode, inputPath, n, h, w, c, outPath] = process.argv.slice(2);
  await tf.setBackend('cpu');
  if (tf.getBackend() !== 'cpu') throw new Error(`backend ${tf.getBackend()} instead of cpu`);
  const model = await tf.loadGraphModel(localFiles(modelPath));
  const raw = fs.readFileSync(inputPath);
  const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const input = tf.tensor4d(values, [Number(n), Number(h), Number(w), Number(c)]);
  const output = model.execute(input, outputNode);
  const data = await output.data();
  fs.writeFileSync(outPath, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  process.stdout.write(JSON.stringify({ shape: output.shape, backend: tf.getBackend(), version: tf.version.tfjs }) + '\n');
}

main().catch((error) => {
  process.stderr.write(`reference.js: ${error.message}\n`);
  process.exit(1);
});
