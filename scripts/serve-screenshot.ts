// The README's picture of `deeplab serve`'s page: starts the server on a free port, opens the page
// in headless Chromium, uploads an image, points at a pixel, and saves a screenshot.
//   node dist/scripts/serve-screenshot.js MODEL WEIGHTS IMAGE OUT.png [--classes META]
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

const [model, weights, image, out, ...rest] = process.argv.slice(2);
if (!out) throw new Error('usage: serve-screenshot MODEL WEIGHTS IMAGE OUT.png [--classes META]');
const child = spawn('bin/deeplab', ['serve', '-m', model, '-w', weights, '--port', '0', ...rest], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let log = '';
const url = await new Promise<string>((resolve, reject) => {
  child.stdout.on('data', (d: Buffer) => {
    log += d.toString();
    const m = / on (http:\/\/[\d.]+:\d+)\n/.exec(log);
    if (m) resolve(m[1]);
  });
  child.on('exit', (code) => reject(new Error(`deeplab serve exited (${code}): ${log}`)));
});
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  await page.goto(url);
  await page.waitForSelector('body[data-state=ready]');
  await page.setInputFiles('#file', image);
  await page.waitForSelector('body[data-state=done]', { timeout: 120_000 });
  await page.fill('#opacity', '60');
  await page.dispatchEvent('#opacity', 'input');
  const box = (await page.locator('#canvas').boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.55);
  await page.screenshot({ path: out, fullPage: true });
} finally {
  await browser.close();
  child.kill('SIGTERM');
}
