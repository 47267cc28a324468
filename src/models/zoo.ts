// Every preset, by name. Plain arrays from one file per source project: no registry.
import type { BuildOptions, Preset, Segmentor } from './segmentor.js';
import { TORCHVISION_PRESETS } from './presets/torchvision.js';
import { MMSEG_PRESETS } from './presets/mmseg.js';
import { V2_PRESETS } from './presets/deeplab-v2.js';
import { V3PLUS_PRESETS } from './presets/deeplabv3plus.js';

export const PRESETS: readonly Preset[] = [...TORCHVISION_PRESETS, ...MMSEG_PRESETS, ...V2_PRESETS, ...V3PLUS_PRESETS];

export function findPreset(name: string): Preset {
  const p = PRESETS.find((x) => x.name === name);
  if (!p) {
    const near = PRESETS.filter((x) => x.name.includes(name) || name.includes(x.name)).map((x) => x.name);
    throw new Error(
      `unknown model preset "${name}"${near.length ? ` (did you mean ${near.join(', ')}?)` : ''}; \`deeplab models\` lists them`,
    );
  }
  return p;
}

export function buildModel(name: string, o?: BuildOptions): Segmentor {
  return findPreset(name).build(o);
}
