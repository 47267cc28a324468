// Reading a config file (JSON or YAML), applying --set overrides, validating: every error names
// the file and the key path.
import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { Config } from './schema.js';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: invalid config\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** model.decode_head.dilations[2] */
function pathText(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)),
    '',
  );
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `unknown key "${pathText([...i.path, k])}"`);
    const where = pathText(i.path) || '(top level)';
    return [`${where}: ${i.message}`];
  });
}

/** Sets a dotted path ("train.optimizer.lr", "data.train.crop[0]") to a value parsed as JSON if it can be. */
export function applyOverride(obj: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new Error(`--set expects key=value, got "${assignment}"`);
  const key = assignment.slice(0, eq);
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  const parts = key.split('.').flatMap((p) =>
    p
      .split(/\[(\d+)\]/)
      .filter(Boolean)
      .map((x) => (/^\d+$/.test(x) ? Number(x) : x)),
  );
  let cur: Record<string | number, unknown> = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = cur[parts[i]];
    if (next === undefined) cur[parts[i]] = typeof parts[i + 1] === 'number' ? [] : {};
    else if (typeof next !== 'object' || next === null)
      throw new Error(`--set ${key}: "${parts.slice(0, i + 1).join('.')}" is not an object`);
    cur = cur[parts[i]] as Record<string | number, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}

export function parseConfig(raw: unknown, file = '<config>'): Config {
  const r = Config.safeParse(raw);
  if (!r.success) throw new ConfigError(file, describeIssues(r.error.issues));
  return r.data;
}

/**
 * The deepest nesting of brackets and braces in a config's text. The schema nests at most five
 * levels (data.dataset.labelMap, lists of lists); the YAML and JSON parsers recurse once per
 * level, so a file nested many thousands deep would hang or overflow them: refused before parsing.
 */
export const MAX_CONFIG_NESTING = 64;

function nestingDepth(text: string): number {
  let depth = 0,
    max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 91 || c === 123)
      max = Math.max(max, ++depth); // [ {
    else if (c === 93 || c === 125) depth = Math.max(0, depth - 1); // ] }
  }
  return max;
}

export function loadConfig(file: string, overrides: readonly string[] = []): Config {
  if (!existsSync(file)) throw new ConfigError(file, ['no such file']);
  const text = readFileSync(file, 'utf8');
  const depth = nestingDepth(text);
  if (depth > MAX_CONFIG_NESTING)
    throw new ConfigError(file, [
      `nested ${depth} levels deep; a config nests at most a few (limit ${MAX_CONFIG_NESTING})`,
    ]);
  let raw: unknown;
  try {
    raw = /\.ya?ml$/.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [`cannot parse: ${(e as Error).message}`]);
  }
  if (typeof raw !== 'object' || raw === null) throw new ConfigError(file, ['expected an object at the top level']);
  for (const o of overrides) {
    try {
      applyOverride(raw as Record<string, unknown>, o);
    } catch (e) {
      throw new ConfigError(file, [(e as Error).message]);
    }
  }
  return parseConfig(raw, file);
}
