// Shapes from JS are checked before they reach LibTorch: the addon's integer conversion rejects
// NaN, Infinity and fractions for every operator (it used to turn them into 0 or truncate them),
// and creation functions also require sizes to be non-negative, naming the function and the shape.
import type { Shape } from './tensor.js';

export function checkShape(shape: Shape, what: string): void {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: expected a shape (an array of sizes), got ${typeof shape}`);
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(
        `${what}: size ${i} of shape [${shape.map(String).join(', ')}] is ${String(d)}; sizes must be non-negative integers`,
      );
    }
  }
}
