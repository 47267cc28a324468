// A contact sheet of predictions: one row per sample, image | ground truth | prediction |
// overlay, in the segmenter's palette. The demo writes one; so can any evaluation.
import { readImage, colorize, overlay } from '../data/image.js';
import { readMask } from '../data/masks.js';
import type { Segmenter } from '../inference/segmenter.js';

export async function sampleSheet(
  seg: Segmenter,
  samples: { image: string; mask: string | null }[],
  o: { scale?: number } = {},
): Promise<{ data: Uint8Array; width: number; height: number }> {
  const rows: Uint8Array[][] = [];
  let w = 0,
    h = 0;
  for (const s of samples) {
    const img = await readImage(s.image);
    const gt = (await readMask(s.mask!)).data;
    const r = seg.segmentImage(img, { scale: o.scale });
    const pred = colorize(r.labels, seg.palette.colors);
    rows.push([img.data, colorize(gt, seg.palette.colors), pred, overlay(img, pred)]);
    [w, h] = [img.width, img.height];
  }
  const cols = 4,
    gap = 4;
  const W = cols * w + (cols - 1) * gap,
    H = rows.length * h + (rows.length - 1) * gap;
  const out = new Uint8Array(W * H * 3).fill(255);
  rows.forEach((tiles, ri) =>
    tiles.forEach((t, ci) => {
      for (let y = 0; y < h; y++)
        out.set(t.subarray(y * w * 3, (y + 1) * w * 3), ((ri * (h + gap) + y) * W + ci * (w + gap)) * 3);
    }),
  );
  return { data: out, width: W, height: H };
}
