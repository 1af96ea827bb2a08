// Classify images with a file written by `tlearn export` (JavaScript: onnxruntime-node, or
// onnxruntime-web in a browser with the same calls).
//
//   node classify.mjs classifier.onnx photo.rgb ...   # raw RGB bytes, already SIZE x SIZE
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node"; // in a browser: import * as ort from "onnxruntime-web";

// Browser only: an <img> as tlearn predict sees it, shorter side to `size`, centre crop (the
// canvas resamples differently from tlearn and PIL: expect small differences in probabilities).
export function canvasPixels(img, size) {
  const m = Math.min(img.naturalWidth, img.naturalHeight);
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext("2d");
  const [sx, sy] = [(img.naturalWidth - m) / 2, (img.naturalHeight - m) / 2];
  ctx.drawImage(img, sx, sy, m, m, 0, 0, size, size);
  const rgba = ctx.getImageData(0, 0, size, size).data;
  return Uint8Array.from({ length: size * size * 3 }, (_, i) => rgba[Math.floor(i / 3) * 4 + (i % 3)]);
}

// Runs a batch of SIZE x SIZE RGB images (each a Uint8Array of SIZE*SIZE*3 bytes, row-major).
export async function classify(session, images, size) {
  const batch = new Uint8Array(images.length * size * size * 3);
  images.forEach((pixels, i) => batch.set(pixels, i * size * size * 3));
  const input = new ort.Tensor("uint8", batch, [images.length, size, size, 3]);
  const out = await session.run({ images: input });
  const k = out.probabilities.dims[1];
  return images.map((_, i) => ({
    label: Number(out.label.data[i]),
    probabilities: Array.from(out.probabilities.data.slice(i * k, (i + 1) * k)),
  }));
}

async function main([model, ...paths]) {
  const session = await ort.InferenceSession.create(model);
  const size = Math.round(Math.sqrt(readFileSync(paths[0]).length / 3));
  const results = await classify(session, paths.map((p) => new Uint8Array(readFileSync(p))), size);
  results.forEach((r, i) => console.log(JSON.stringify({ path: paths[i], ...r })));
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
