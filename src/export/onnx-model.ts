// Serialises an OnnxGraph as an ONNX ModelProto with protobufjs (a maintained, pure-JS protobuf
// library) and ONNX's own schema, src/export/onnx.proto (ONNX 1.12, committed as it ships), so
// field numbers and types come from the specification rather than from code written here.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import * as torch from '../torch/index.js';
import { ELEM, type Attr, type Initializer, type OnnxGraph } from './onnx-graph.js';

/** opset 17 (ONNX 1.12, IR version 8): torch.onnx's default, run by every onnxruntime since 1.12 */
export const OPSET = 17;
export const IR_VERSION = 8;

export type OnnxPrecision = 'fp32' | 'fp16';

/** A graph input or output: its element type and shape (a string is a symbolic dimension). */
export interface TensorInfo {
  name: string;
  elemType: number;
  shape: (number | string)[];
}

export interface ModelInfo {
  graphName: string;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  precision: OnnxPrecision;
  docString: string;
  producerVersion: string;
}

let modelProto: protobuf.Type | undefined;

function schema(): protobuf.Type {
  if (modelProto) return modelProto;
  const here = dirname(fileURLToPath(import.meta.url));
  // From src/export (sources) or dist/src/export (compiled) to the committed .proto.
  const file = [join(here, 'onnx.proto'), join(here, '../../../src/export/onnx.proto')].find((f) => existsSync(f));
  if (!file) throw new Error(`ONNX export: onnx.proto not found next to ${here} or in src/export`);
  modelProto = protobuf.loadSync(file).lookupType('onnx.ModelProto');
  return modelProto;
}

const ATTR_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

function attribute(name: string, a: Attr): Record<string, unknown> {
  if ('int' in a) return { name, type: ATTR_TYPE.int, i: a.int };
  if ('float' in a) return { name, type: ATTR_TYPE.float, f: a.float };
  if ('ints' in a) return { name, type: ATTR_TYPE.ints, ints: [...a.ints] };
  return { name, type: ATTR_TYPE.string, s: Buffer.from(a.string, 'utf8') };
}

function valueInfo(t: TensorInfo): Record<string, unknown> {
  return {
    name: t.name,
    type: {
      tensorType: {
        elemType: t.elemType,
        shape: { dim: t.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** float32 data as IEEE half bit patterns, rounded as LibTorch rounds (to nearest even). */
function toHalf(data: Float32Array): Uint16Array {
  return torch.scope(() => torch.tensor(data, { shape: [data.length] }).to('float16').data() as Uint16Array);
}

function tensorProto(t: Initializer, precision: OnnxPrecision): Record<string, unknown> {
  let elemType: number, bytes: ArrayBufferView;
  if (t.data instanceof BigInt64Array) [elemType, bytes] = [ELEM.int64, t.data];
  else if (t.data instanceof Float64Array) [elemType, bytes] = [ELEM.double, t.data];
  else if (precision === 'fp16' && t.followsPrecision) [elemType, bytes] = [ELEM.float16, toHalf(t.data)];
  else [elemType, bytes] = [ELEM.float, t.data];
  // raw_data is little-endian, as typed arrays are on every platform Node runs on here.
  return {
    name: t.name,
    dims: t.dims,
    dataType: elemType,
    rawData: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  };
}

/** The .onnx file's bytes. */
export function encodeModel(graph: OnnxGraph, info: ModelInfo): Uint8Array {
  const Model = schema();
  const message = {
    irVersion: IR_VERSION,
    producerName: 'deeplab',
    producerVersion: info.producerVersion,
    docString: info.docString,
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: info.graphName,
      node: graph.nodes.map((n, i) => ({
        name: `${n.op}_${i}`,
        opType: n.op,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
      })),
      initializer: [...graph.initializers.values()].map((t) => tensorProto(t, info.precision)),
      input: info.inputs.map(valueInfo),
      output: info.outputs.map(valueInfo),
    },
  };
  const err = Model.verify(message);
  if (err) throw new Error(`ONNX export: the model message is malformed: ${err}`);
  return Model.encode(message).finish();
}
