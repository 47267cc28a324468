// The classes present in a label map, most pixels first: the legend Segmenter returns, the one
// `deeplab serve` answers with, from one function (no torch import, so the server's main thread
// can use it without loading the addon).
import type { Palette, RGB } from '../data/palettes.js';

export interface LegendEntry {
  id: number;
  name: string;
  color: RGB;
  /** pixels labelled with this class */
  pixels: number;
}

export function legendOf(labels: Uint8Array | Uint16Array, numClasses: number, palette: Palette): LegendEntry[] {
  // A typed-array histogram: a Map is slow at one entry per pixel.
  const counts = new Float64Array(numClasses);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return [...counts.keys()]
    .filter((id) => counts[id] > 0)
    .sort((a, b) => counts[b] - counts[a] || a - b)
    .map((id) => ({ id, name: palette.classes[id], color: palette.colors[id], pixels: counts[id] }));
}
