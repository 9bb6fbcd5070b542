// SimMIM question answering in the browser: the same tokenizer and image
// conversion as the Python edge runtime (simmim_tf/edge), and the exported
// model_<variant>.tflite run by LiteRT.js (WebGPU where the browser has it,
// WebAssembly with XNNPACK otherwise).
//
// Python counterparts, which tests/test_web_app.py holds this file to:
//   splitWords, Tokenizer  simmim_tf/preprocessing/question_tokenizer.py
//   convertImage           simmim_tf/preprocessing/image_conversion.py
//   topAnswers, firstMap   simmim_tf/explanation.py

import { loadLiteRt, loadAndCompile, Tensor } from "./litert/index.js";

const PAD_ID = 0;
const OOV_ID = 1;
const WHITE = 255;

/** Lower-cased words and numbers; punctuation is dropped. */
export function splitWords(text) {
  return text.toLowerCase().match(/[a-z0-9]+/g) || [];
}

export class Tokenizer {
  constructor({ vocabulary, sequence_length }) {
    this.sequenceLength = sequence_length;
    this.ids = new Map(vocabulary.map((word, i) => [word, i]));
  }

  /** {ids: Int32Array(sequenceLength), words, unknownWords} */
  encode(question) {
    const words = splitWords(question).slice(0, this.sequenceLength);
    if (words.length === 0) throw new Error(`empty question: "${question}" has no words`);
    const ids = new Int32Array(this.sequenceLength).fill(PAD_ID);
    words.forEach((w, i) => (ids[i] = this.ids.has(w) ? this.ids.get(w) : OOV_ID));
    return { ids, words, unknownWords: words.filter((w) => !this.ids.has(w)) };
  }
}

// NumPy's rint: halves to the even neighbour.
function rint(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const f32 = Math.fround;

function bilinearIndices(inSize, outSize) {
  const scale = f32(inSize / outSize);
  const lower = new Int32Array(outSize);
  const upper = new Int32Array(outSize);
  const weight = new Float32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const centre = f32(f32(f32(i + 0.5) * scale) - 0.5);
    const low = Math.floor(centre);
    weight[i] = f32(centre - low);
    lower[i] = Math.min(Math.max(low, 0), inSize - 1);
    upper[i] = Math.min(Math.max(Math.ceil(centre), 0), inSize - 1);
  }
  return [lower, upper, weight];
}

/**
 * RGBA pixels as a canvas gives them (Uint8ClampedArray, height x width x 4)
 * → Uint8Array (size x size x 3): alpha composited on white, a centre crop
 * to a square, bilinear resampling with half-pixel centres, rounded.
 */
export function convertImage(rgba, height, width, size) {
  const rgb = new Float32Array(height * width * 3);
  for (let p = 0; p < height * width; p++) {
    const alpha = f32(rgba[4 * p + 3] / 255);
    for (let c = 0; c < 3; c++) {
      rgb[3 * p + c] = rint(f32(f32(rgba[4 * p + c] * alpha) + f32(WHITE * f32(1 - alpha))));
    }
  }
  const out = new Uint8Array(size * size * 3);
  if (height === size && width === size) {
    out.set(rgb);
    return out;
  }
  const cropH = Math.max(Math.min(height, Math.trunc(f32(width * size) / f32(size))), 1);
  const cropW = Math.max(Math.min(width, Math.trunc(f32(height * size) / f32(size))), 1);
  const top = Math.trunc(f32(height - cropH) / 2);
  const left = Math.trunc(f32(width - cropW) / 2);
  const [y0, y1, dy] = bilinearIndices(cropH, size);
  const [x0, x1, dx] = bilinearIndices(cropW, size);
  const at = (y, x, c) => rgb[3 * ((top + y) * width + left + x) + c];
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      for (let c = 0; c < 3; c++) {
        // Along x, then along y, in float32: the order the Python side uses.
        const a = f32(at(y0[i], x0[j], c) + f32(f32(at(y0[i], x1[j], c) - at(y0[i], x0[j], c)) * dx[j]));
        const b = f32(at(y1[i], x0[j], c) + f32(f32(at(y1[i], x1[j], c) - at(y1[i], x0[j], c)) * dx[j]));
        const v = f32(a + f32(f32(b - a) * dy[i]));
        out[3 * (i * size + j) + c] = rint(Math.min(Math.max(v, 0), 255));
      }
    }
  }
  return out;
}

/** The k most probable [answer, probability] pairs; ties keep the first. */
export function topAnswers(probabilities, answers, k = 3) {
  const order = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  return order.slice(0, k).map((i) => [answers[i], probabilities[i]]);
}

/** Visual attention (heads, tokens, regions) → (regions) over the real words, sums to 1. */
function visualMap(attention, heads, tokens, regions, wordCount) {
  const map = new Float32Array(regions);
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < wordCount; t++) {
      for (let r = 0; r < regions; r++) map[r] += attention[(h * tokens + t) * regions + r];
    }
  }
  const total = map.reduce((s, v) => s + v, 0);
  return map.map((v) => v / Math.max(total, 1e-9));
}

let runtime = null;

/** The sidecar of a part and its compiled .tflite files: WebGPU where the
 * browser has it (or `accelerator`), WebAssembly where that fails. */
async function loadPart(folder, sidecar, files, accelerator) {
  const meta = await (await fetch(`${folder}/${sidecar}`)).json();
  runtime = runtime || loadLiteRt(`${folder}/litert/`);
  await runtime;
  let used = accelerator || ("gpu" in navigator ? "webgpu" : "wasm");
  const compile = (file) => loadAndCompile(`${folder}/${file}`, { accelerator: used });
  let models;
  try {
    models = await Promise.all(files.map(compile));
  } catch (error) {
    if (used === "wasm") throw error;
    console.warn(`${used} failed (${error}); running on wasm`);
    used = "wasm";
    models = await Promise.all(files.map(compile));
  }
  return { meta, models, accelerator: used };
}

/** A tensor's values on the CPU, as float32; the tensor is freed. */
async function values(tensor) {
  const onCpu = await tensor.moveTo("wasm");
  const out = Float32Array.from(onCpu.toTypedArray());
  onCpu.delete();
  return out;
}

function argmax(array) {
  let best = 0;
  for (let i = 1; i < array.length; i++) if (array[i] > array[best]) best = i;
  return best;
}

function imageTensor(rgba, height, width, size) {
  const pixels = convertImage(rgba, height, width, size);
  return new Tensor(Float32Array.from(pixels), [1, size, size, 3]);
}

/** Question answering: `await SimMIM.load(folder, {variant, accelerator})`. */
export class SimMIM {
  static async load(folder, { variant = "float32", accelerator = null } = {}) {
    const { meta, models, accelerator: used } = await loadPart(
      folder, "simmim_meta.json", [`model_${variant}.tflite`], accelerator);
    return new SimMIM(meta, models[0], variant, used);
  }

  constructor(meta, model, variant, accelerator) {
    this.meta = meta;
    this.model = model;
    this.variant = variant;
    this.accelerator = accelerator;
    this.tokenizer = new Tokenizer(meta.tokenizer);
    this.imageSize = meta.image_size;
    this.gridShape = meta.grid_shape;
  }

  /** RGBA pixels (as from a canvas) and a question → the prediction. */
  async answer(rgba, height, width, question, k = 3) {
    const { ids, words, unknownWords } = this.tokenizer.encode(question);
    const inputs = {
      images: imageTensor(rgba, height, width, this.imageSize),
      token_ids: new Tensor(ids, [1, ids.length]),
    };
    const started = performance.now();
    const outputs = await this.model.run(inputs);
    const ms = performance.now() - started;
    for (const tensor of Object.values(inputs)) tensor.delete();
    const read = async (name) => (name in outputs ? values(outputs[name]) : null);
    const probabilities = await read("probabilities");
    const visual = await read("visual_attention");
    const anchor = await read("anchor_attention");
    const regions = this.gridShape[0] * this.gridShape[1];
    const tokens = ids.length;
    const heads = visual.length / (tokens * regions);
    const best = topAnswers(probabilities, this.meta.answers, k);
    return {
      answer: best[0][0],
      probability: best[0][1],
      topK: best,
      words,
      unknownWords,
      visualMap: visualMap(visual, heads, tokens, regions, words.length),
      // The first anchor: where the relational attention finds the object named.
      anchorMap: anchor ? anchor.slice(0, regions) : null,
      ms,
    };
  }
}

/** Captions, greedy and word by word (simmim_tf/edge/edge_captioner.py):
 * the encoder once per picture, then the one-step decoder on the previous
 * word, its position, the regions and the key/value cache it returned. */
export class Captioner {
  static async load(folder, { variant = "float32", accelerator = null } = {}) {
    const files = ["encoder", "decoder"].map((p) => `captioner_${variant}_${p}.tflite`);
    const { meta, models, accelerator: used } = await loadPart(
      folder, "captioner_meta.json", files, accelerator);
    return new Captioner(meta, models, variant, used);
  }

  constructor(meta, [encoder, decoder], variant, accelerator) {
    Object.assign(this, { meta, encoder, decoder, variant, accelerator });
  }

  async caption(rgba, height, width) {
    const { image_size: size, max_length: maxLength, vocabulary, start_id: startId,
      end_id: endId, cache_shape: cacheShape } = this.meta;
    const started = performance.now();
    const images = imageTensor(rgba, height, width, size);
    const { regions } = await this.encoder.run({ images });
    images.delete();
    let cache = new Tensor(new Float32Array(cacheShape.reduce((a, b) => a * b, 1)), cacheShape);
    const ids = [];
    let token = startId;
    for (let position = 0; position < maxLength; position++) {
      const inputs = {
        token_ids: new Tensor(Int32Array.of(token), [1, 1]),
        positions: new Tensor(Int32Array.of(position), [1, 1]),
      };
      const out = await this.decoder.run({ ...inputs, regions, cache });
      inputs.token_ids.delete();
      inputs.positions.delete();
      cache.delete();
      cache = out.cache;
      token = argmax(await values(out.logits));
      ids.push(token);
      if (token === endId) break;
    }
    cache.delete();
    regions.delete();
    const words = [];
    for (const id of ids) {
      const word = vocabulary[id];
      if (word === "[END]") break;
      if (word !== "[START]" && word !== "[PAD]") words.push(word);
    }
    return { caption: words.join(" "), ids, ms: performance.now() - started };
  }
}

/** Image–text retrieval (simmim_tf/edge/edge_retriever.py): the image and
 * text towers give unit vectors; a higher dot product is a closer match. */
export class Retriever {
  static async load(folder, { variant = "float32", accelerator = null } = {}) {
    const files = ["image", "text"].map((t) => `retrieval_${variant}_${t}.tflite`);
    const { meta, models, accelerator: used } = await loadPart(
      folder, "retrieval_meta.json", files, accelerator);
    return new Retriever(meta, models, variant, used);
  }

  constructor(meta, [image, text], variant, accelerator) {
    Object.assign(this, { meta, image, text, variant, accelerator });
    this.tokenizer = new Tokenizer(meta.tokenizer);
  }

  async embedImage(rgba, height, width) {
    const images = imageTensor(rgba, height, width, this.meta.image_size);
    const { embedding } = await this.image.run({ images });
    images.delete();
    return values(embedding);
  }

  async embedText(text) {
    const { ids, unknownWords } = this.tokenizer.encode(text);
    const tokens = new Tensor(ids, [1, ids.length]);
    const { embedding } = await this.text.run({ token_ids: tokens });
    tokens.delete();
    return { embedding: await values(embedding), unknownWords };
  }
}
