// Presets of this source project: filled in by the model-zoo work (issue 3).
import type { Preset } from '../segmentor.js';

export const V2_PRESETS: Preset[] = [];
