// The page: a picture from the camera or a file; a typed question, the
// answer with its probabilities and where the model looked; a caption; a
// search of chosen pictures by text. Each part shows where its export is
// in the folder (web.json). Model logic lives in simmim.js;
// `window.simmim` lets tests drive the same code.

import { Captioner, Retriever, SimMIM } from "./simmim.js";

const config = await (await fetch("web.json")).json();
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const status = $("status");
const parts = { model: null, captioner: null, retriever: null };
let picture = null; // {rgba, height, width, bitmap}
let gallery = []; // [{name, url, embedding}]

const variants = config.vqa || config.captioner || config.retrieval;
for (const variant of variants) $("variant").add(new Option(variant, variant));
$("variant").value = params.get("variant") || variants[0];

// Each part in the variant asked for where its export has it, else its first.
async function load(variant) {
  status.textContent = `Loading ${variant}…`;
  document.querySelectorAll("button").forEach((b) => (b.disabled = true));
  const options = (part) => ({
    variant: config[part].includes(variant) ? variant : config[part][0],
    accelerator: params.get("accelerator"),
  });
  const loaded = [];
  if (config.vqa) loaded.push((parts.model = await SimMIM.load(".", options("vqa"))));
  if (config.captioner) loaded.push((parts.captioner = await Captioner.load(".", options("captioner"))));
  if (config.retrieval) loaded.push((parts.retriever = await Retriever.load(".", options("retrieval"))));
  for (const part of ["vqa", "captioner", "retrieval"]) $(part).hidden = !config[part];
  status.textContent = `${variant} on ${loaded[0].accelerator}.`;
  document.querySelectorAll("button").forEach((b) => (b.disabled = false));
  gallery = [];
  $("hits").innerHTML = "";
}

async function pixelsOf(source) {
  const bitmap = await createImageBitmap(source);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  return { rgba: data, height: bitmap.height, width: bitmap.width, bitmap };
}

// Where each part looked, over the picture: the relational anchor (the
// object the question names, the part that answers relational questions)
// in red, the visual attention (the words reading the image) in blue.
function draw(prediction) {
  const canvas = $("picture");
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(picture.bitmap, 0, 0, canvas.width, canvas.height);
  $("legend").innerHTML = "";
  if (!prediction) return;
  const [rows, cols] = parts.model.gridShape;
  const layers = [
    [prediction.visualMap, [25, 103, 210], "visual attention: where the words look"],
    [prediction.anchorMap, [220, 30, 30], "anchor: the object the question names"],
  ].filter(([map]) => map);
  for (const [map, [r, g, b]] of layers) {
    const peak = Math.max(...map);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        context.fillStyle = `rgba(${r},${g},${b},${(0.6 * map[i * cols + j]) / peak})`;
        context.fillRect((j * canvas.width) / cols, (i * canvas.height) / rows,
          canvas.width / cols, canvas.height / rows);
      }
    }
  }
  $("legend").innerHTML = layers
    .map(([, [r, g, b], text]) => `<div><span class="swatch" style="background:rgb(${r},${g},${b})"></span>${text}</div>`)
    .join("");
}

function show(prediction) {
  $("result").hidden = false;
  $("answer").textContent = prediction.answer;
  $("probability").textContent = `${(100 * prediction.probability).toFixed(1)}%`;
  $("top-k").innerHTML = prediction.topK
    .map(([a, p]) => `<li>${a} ${(100 * p).toFixed(1)}%<span class="bar" style="width:${(8 * p).toFixed(2)}rem"></span></li>`)
    .join("");
  $("unknown").hidden = prediction.unknownWords.length === 0;
  $("unknown").textContent = `Words the model does not know (read as unknown): ${prediction.unknownWords.join(", ")}`;
  $("timing").textContent = `${prediction.ms.toFixed(1)} ms on ${parts.model.accelerator}`;
  draw(prediction);
}

function needPicture() {
  if (!picture) throw new Error("Take a photo or choose a picture first.");
}

async function ask(question) {
  needPicture();
  const prediction = await parts.model.answer(picture.rgba, picture.height, picture.width, question);
  $("question").value = question;
  show(prediction);
  return prediction;
}

async function caption() {
  needPicture();
  const result = await parts.captioner.caption(picture.rgba, picture.height, picture.width);
  $("caption").textContent = result.caption;
  return result;
}

async function addToGallery(files) {
  for (const file of files) {
    const { rgba, height, width } = await pixelsOf(file);
    const embedding = await parts.retriever.embedImage(rgba, height, width);
    gallery.push({ name: file.name || String(gallery.length), url: URL.createObjectURL(file), embedding });
  }
  $("search-note").textContent = `${gallery.length} pictures to search.`;
}

async function search(query, k = 5) {
  const { embedding, unknownWords } = await parts.retriever.embedText(query);
  const dot = (a) => a.reduce((s, v, i) => s + v * embedding[i], 0);
  const hits = gallery
    .map((item) => ({ name: item.name, url: item.url, score: dot(item.embedding) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
  $("hits").innerHTML = hits
    .map((h) => `<li><img src="${h.url}" alt=""><span>${h.score.toFixed(2)}</span></li>`)
    .join("");
  $("search-note").textContent = unknownWords.length
    ? `Words the model does not know: ${unknownWords.join(", ")}` : "";
  return hits;
}

// Errors reach the status line, not only the console.
const reported = (fn) => async (event) => {
  event.preventDefault();
  try {
    await fn(event);
  } catch (error) {
    status.textContent = String(error.message || error);
  }
};
async function choosePicture(source) {
  picture = await pixelsOf(source);
  $("result").hidden = true;
  $("caption").textContent = "";
  draw(null);
}

$("image-input").addEventListener("change", reported(async (event) => {
  if (event.target.files.length) await choosePicture(event.target.files[0]);
}));
$("variant").addEventListener("change", reported((event) => load(event.target.value)));
$("ask").addEventListener("submit", reported(() => ask($("question").value)));
$("caption-button").addEventListener("click", reported(caption));
$("search-input").addEventListener("change", reported((event) => addToGallery(event.target.files)));
$("search").addEventListener("submit", reported(() => search($("query").value)));

// For tests and the console: the same steps on pictures at URLs.
const fetchBlob = async (url) => (await fetch(url)).blob();
window.simmim = {
  load,
  pixelsOf,
  async answerUrl(url, question) {
    await choosePicture(await fetchBlob(url));
    return ask(question);
  },
  async captionUrl(url) {
    await choosePicture(await fetchBlob(url));
    return caption();
  },
  async searchUrls(urls, query, k) {
    gallery = [];
    await addToGallery(await Promise.all(urls.map(async (u) => new File([await fetchBlob(u)], u))));
    return search(query, k);
  },
  get model() { return parts.model; },
  get captioner() { return parts.captioner; },
  get retriever() { return parts.retriever; },
};
await load($("variant").value);
window.simmim.ready = true;
