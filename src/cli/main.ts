#!/usr/bin/env node
// The `deeplab` command line.
import { Command } from 'commander';
import { infoCommand } from './info.js';
import { demoCommand } from './demo.js';
import { predictCommand } from './predict.js';
import { modelsCommand } from './models.js';
import { trainCommand } from './train.js';
import { evalCommand } from './eval.js';
import { lintDatasetCommand } from './lint-dataset.js';
import { serveCommand } from './serve.js';
import { exportCommand } from './export.js';
import { calibrateCommand } from './calibrate.js';

const program = new Command('deeplab')
  .description('DeepLab semantic segmentation on LibTorch, from TypeScript')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(infoCommand());
program.addCommand(demoCommand());
program.addCommand(modelsCommand());
program.addCommand(predictCommand());
program.addCommand(trainCommand());
program.addCommand(evalCommand());
program.addCommand(calibrateCommand());
program.addCommand(lintDatasetCommand());
program.addCommand(serveCommand());
program.addCommand(exportCommand());

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(`deeplab: ${e.message}`);
  process.exit(1);
});
