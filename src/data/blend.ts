// Colour masks and overlays from class indices: pure pixel arithmetic with no Node imports, so
// the web page (web/, bundled for the browser) draws its overlay with the very code `predict`
// and the server use, and the page test can compare pixels exactly.
import type { RGB } from './palettes.js';

/** Class indices to RGB colours. */
export function colorize(labels: Uint8Array | Uint16Array, colors: readonly RGB[]): Uint8Array {
  const out = new Uint8Array(labels.length * 3);
  for (let i = 0; i < labels.length; i++) {
    const c = colors[labels[i]] ?? [0, 0, 0];
    out[i * 3] = c[0];
    out[i * 3 + 1] = c[1];
    out[i * 3 + 2] = c[2];
  }
  return out;
}

/** The colour mask blended over the image's H x W x 3 pixels (alpha 0.5: mmseg's show_result). */
export function overlay(
  img: { width: number; height: number; data: Uint8Array },
  colorMask: Uint8Array,
  alpha = 0.5,
): Uint8Array {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(img.data[i] * (1 - alpha) + colorMask[i] * alpha);
  return out;
}
