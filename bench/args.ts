// The bench scripts' command lines: `--name value` pairs over a table of defaults, an unknown name
// or a missing value an error that lists the known ones; sizes as "512" or "512x1024".

export function benchArgs(defaults: Record<string, string>, argv = process.argv.slice(2)): Record<string, string> {
  const opt = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    if (!(argv[i] in opt) || i + 1 >= argv.length)
      throw new Error(`unknown option or missing value: ${argv[i]} (known: ${Object.keys(opt).join(' ')})`);
    opt[argv[i]] = argv[i + 1];
  }
  return opt;
}

/** "512" -> [512, 512], "512x1024" -> [512, 1024] (height x width). */
export function benchSize(text: string): [number, number] {
  const sz = text.toLowerCase().split('x').map(Number);
  return sz.length === 2 ? [sz[0], sz[1]] : [sz[0], sz[0]];
}
