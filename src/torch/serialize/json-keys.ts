// JSON.parse keeps the last of two equal keys without a word. A safetensors header with a key
// twice would then give one tensor's name the other's bytes (or hide a tensor), so the header
// text is scanned for duplicate keys in any object before it is parsed.

/** The first key that appears twice in one JSON object, with its path; undefined when none. */
export function findDuplicateKey(text: string): string | undefined {
  // One set of keys per open object; null for an open array. A key is a string that is followed
  // (after whitespace) by a colon.
  const open: (Set<string> | null)[] = [];
  const path: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') {
      open.push(new Set());
      path.push('');
    } else if (c === '[') {
      open.push(null);
      path.push('[]');
    } else if (c === '}' || c === ']') {
      open.pop();
      path.pop();
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const raw = text.slice(i, j + 1);
      i = j;
      const keys = open[open.length - 1];
      if (!keys) continue;
      let k = j + 1;
      while (k < text.length && (text[k] === ' ' || text[k] === '\t' || text[k] === '\n' || text[k] === '\r')) k++;
      if (text[k] !== ':') continue;
      let key: string;
      try {
        key = JSON.parse(raw) as string; // escapes decoded, so "a" and "\u0061" are the same key
      } catch {
        return undefined; // malformed: JSON.parse reports it
      }
      if (keys.has(key)) return [...path.slice(0, -1), key].filter((p) => p !== '').join('.') || key;
      keys.add(key);
      path[path.length - 1] = key;
    }
  }
  return undefined;
}
