// `deeplab serve --model PRESET --weights FILE`: the model on its own thread behind an HTTP
// server (src/serve/). Listens on 127.0.0.1 unless --host says otherwise; SIGTERM or SIGINT
// lets in-flight requests finish, refuses new ones, then exits.
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { ModelThread } from '../serve/model-thread.js';
import { buildServer } from '../serve/server.js';
import { DEFAULT_LIMITS } from '../serve/limits.js';
import { paletteFor, paletteOfDataset } from '../data/palettes.js';
import { classesPalette } from './predict.js';
import { parseIntOption, parseNonNegativeIntOption, parseOutputStride, parseScaleOption } from './options.js';
import type { OutputStride } from '../models/backbone.js';
import { PRECISIONS, type Precision } from '../inference/fast-path.js';

interface ServeOptions {
  model: string;
  weights: string;
  classes?: string;
  port: number;
  host: string;
  precision: Precision;
  calibration?: string;
  os?: OutputStride;
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  maxBodyMb: number;
  maxPixels: number;
  timeoutMs: number;
  bodyTimeoutMs: number;
  onnx?: string;
  scale: number;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve a model over HTTP: segmentation, health, Prometheus metrics and a web page')
    .requiredOption('-m, --model <preset>', 'model preset (see `deeplab models`)')
    .requiredOption('-w, --weights <file>', ".pth or .safetensors checkpoint in the preset's key layout")
    .option(
      '--classes <meta>',
      "class names and colours from a custom dataset's meta file (YAML or JSON); the checkpoint must have as many classes",
    )
    .option('-p, --port <port>', 'TCP port (0: any free one)', parseNonNegativeIntOption, 8080)
    .option('--host <host>', 'address to listen on (0.0.0.0 to accept other machines)', '127.0.0.1')
    .addOption(
      new Option(
        '--precision <p>',
        'fp32, bf16 autocast (faster where the CPU has AVX512-BF16), or int8 (needs `deeplab calibrate`; VNNI CPUs)',
      )
        .choices(PRECISIONS)
        .default('fp32'),
    )
    .option('--calibration <file>', 'int8: the calibration file (default: <weights>.calib.json)')
    .option('--os <stride>', "output stride 8, 16 or 32 (default: the preset's)", parseOutputStride)
    .option('--max-batch <n>', 'most images of one size in a forward pass', parseIntOption, 4)
    .option('--max-wait-ms <ms>', 'how long an idle model waits for a batch to fill', parseNonNegativeIntOption, 5)
    .option('--max-queue <n>', 'images allowed to wait; more get 503 with Retry-After', parseNonNegativeIntOption, 32)
    .option('--max-body-mb <mb>', 'largest upload', parseIntOption, DEFAULT_LIMITS.maxBodyBytes / 2 ** 20)
    .option('--max-pixels <n>', 'largest image (width x height)', parseIntOption, DEFAULT_LIMITS.maxPixels)
    .option(
      '--timeout-ms <ms>',
      'per request: queue, forward pass and encoding',
      parseIntOption,
      DEFAULT_LIMITS.timeoutMs,
    )
    .option('--body-timeout-ms <ms>', 'how long an upload may take', parseIntOption, DEFAULT_LIMITS.bodyTimeoutMs)
    .option('--onnx <file>', "an ONNX export of the model, for the page's in-browser mode")
    .option(
      '--scale <factor>',
      "run the model on each image resized by this factor, as the weights' config resized them (data.test.scale); labels keep the image's size (not the page's in-browser mode)",
      parseScaleOption,
      1,
    )
    .action(async (o: ServeOptions) => {
      if (o.onnx && !existsSync(o.onnx)) throw new Error(`--onnx ${o.onnx}: no such file`);
      const custom = o.classes ? classesPalette(o.classes) : undefined;
      const thread = await ModelThread.start(
        o.model,
        {
          weights: o.weights,
          numClasses: custom?.classes.length,
          outputStride: o.os,
          precision: o.precision,
          calibration: o.calibration,
        },
        o.scale,
      );
      const { info } = thread;
      const palette = paletteFor(custom ?? paletteOfDataset(info.dataset), info.numClasses);
      const { app } = buildServer({
        runner: thread,
        model: {
          name: info.preset,
          numClasses: info.numClasses,
          precision: info.precision,
          palette,
          normalization: info.normalization,
        },
        maxBatch: o.maxBatch,
        maxWaitMs: o.maxWaitMs,
        maxQueue: o.maxQueue,
        limits: {
          maxBodyBytes: o.maxBodyMb * 2 ** 20,
          maxPixels: o.maxPixels,
          timeoutMs: o.timeoutMs,
          bodyTimeoutMs: o.bodyTimeoutMs,
        },
        onnxFile: o.onnx,
      });
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        console.log(`deeplab serve: ${signal}: finishing in-flight requests, refusing new ones`);
        app
          .close()
          .then(() => thread.close())
          .then(
            () => {
              console.log('deeplab serve: stopped');
              process.exit(0);
            },
            (e: Error) => {
              console.error(`deeplab serve: ${e.message}`);
              process.exit(1);
            },
          );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      const address = await app.listen({ port: o.port, host: o.host }).catch(async (e: Error) => {
        await thread.close();
        throw new Error(`cannot listen on ${o.host}:${o.port}: ${e.message}`);
      });
      console.log(
        `deeplab serve: ${info.preset} (${info.numClasses} classes, ${info.precision}, ${info.loadedTensors} tensors from ${o.weights}) on ${address}`,
      );
      console.log(
        `  page ${address}/   segment POST ${address}/v2/models/${info.preset}/segment   metrics ${address}/metrics`,
      );
    });
}
