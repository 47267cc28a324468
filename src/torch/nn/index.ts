export { Module, StateDictError, describeLoadErrors, type Layer, type LoadResult } from './module.js';
export * from './layers.js';
export { Sequential, ModuleList, ModuleDict, pipe } from './containers.js';
export * as init from './init.js';
