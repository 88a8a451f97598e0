/**
 * An ONNX graph in memory and its encoding as a ModelProto (onnx.proto), written with our own protobuf writer
 * (protobuf.ts): only the fields and element types onnx.ts uses. What the graph computes lives in onnx.ts.
 *
 * Facts from onnx.proto used here: a tensor's data type is an enum (FLOAT 1, INT32 6, INT64 7, BOOL 9); initializers carry their values as `raw_data`, little-endian; an attribute names its type (INT 2,
 * STRING 3, INTS 7, STRINGS 8); a graph input or output is a ValueInfoProto with a tensor type whose dimensions
 * are fixed (`dim_value`) or symbolic (`dim_param`).
 */
import { ProtoWriter, float32LE, int32LE, int64LE } from "./protobuf.js";

/** The default-domain operator set the graph is written for. */
export const ONNX_OPSET = 17;
/** The ONNX IR version of the ModelProto (8 goes with opsets up to 18). */
export const ONNX_IR_VERSION = 8;

// ---------------------------------------------------------------------------------------------
// Field numbers and enums of onnx.proto (only those written here)

const MODEL = { irVersion: 1, producerName: 2, docString: 6, graph: 7, opsetImport: 8 } as const;
const OPSET_ID = { domain: 1, version: 2 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 } as const;
const ATTRIBUTE = { name: 1, i: 3, s: 4, ints: 8, strings: 9, type: 20 } as const;
const ATTRIBUTE_TYPE = { int: 2, string: 3, ints: 7, strings: 8 } as const;
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
/** TensorProto.DataType, also the `to` of a Cast node. */
export const DATA_TYPE = { float: 1, int32: 6, int64: 7, bool: 9 } as const;
const VALUE_INFO = { name: 1, type: 2 } as const;
const TYPE = { tensorType: 1 } as const;
const TENSOR_TYPE = { elemType: 1, shape: 2 } as const;
const SHAPE = { dim: 1 } as const;
const DIMENSION = { dimValue: 1, dimParam: 2 } as const;

// ---------------------------------------------------------------------------------------------
// The graph in memory

export type ElemType = keyof typeof DATA_TYPE;

export type Attribute =
  | { name: string; type: "int"; value: number }
  | { name: string; type: "string"; value: string }
  | { name: string; type: "ints"; value: number[] }
  | { name: string; type: "strings"; value: string[] };

export interface OnnxNode {
  name: string;
  opType: string;
  inputs: string[];  // "" for an omitted optional input
  outputs: string[]; // "" for an unused optional output
  attributes: Attribute[];
}

interface Initializer {
  name: string;
  dims: number[];
  dataType: Exclude<ElemType, "bool">;
  data: ArrayLike<number>;
}

/** A graph input or output: its element type and named (symbolic) or fixed dimensions. */
export interface ValueInfo {
  name: string;
  elemType: ElemType;
  dims: (string | number)[];
}

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: Initializer[] = [];
  private readonly named = new Map<string, string>();

  /** Adds an initializer and returns its name. */
  constant(name: string, dims: number[], dataType: Initializer["dataType"], data: ArrayLike<number>): string {
    this.initializers.push({ name, dims, dataType, data });
    return name;
  }

  /** An int64 vector constant shared by every node that asks for the same values (axes, starts, …). */
  int64s(values: number[]): string {
    const key = values.join("_").replaceAll("-", "m");
    let name = this.named.get(key);
    if (name === undefined) this.named.set(key, (name = this.constant(`const_i64_${key}`, [values.length], "int64", values)));
    return name;
  }

  /** Adds a node and returns its first output's name. */
  node(opType: string, name: string, inputs: string[], outputs: string[], attributes: Attribute[] = []): string {
    this.nodes.push({ name, opType, inputs, outputs, attributes });
    return outputs.find((o) => o !== "")!;
  }

  /** A node with one output, named as the node. */
  op(opType: string, name: string, inputs: string[], attributes: Attribute[] = []): string {
    return this.node(opType, name, inputs, [name], attributes);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

export function encodeModel(g: GraphBuilder, inputs: ValueInfo[], outputs: ValueInfo[], doc: string): Uint8Array {
  const w = new ProtoWriter();
  w.int(MODEL.irVersion, ONNX_IR_VERSION);
  w.string(MODEL.producerName, "longshort");
  w.string(MODEL.docString, doc);
  w.message(MODEL.graph, (gw) => {
    for (const n of g.nodes) gw.message(GRAPH.node, (nw) => encodeNode(nw, n));
    gw.string(GRAPH.name, "longshort");
    for (const t of g.initializers) gw.message(GRAPH.initializer, (tw) => encodeTensor(tw, t));
    for (const v of inputs) gw.message(GRAPH.input, (vw) => encodeValueInfo(vw, v));
    for (const v of outputs) gw.message(GRAPH.output, (vw) => encodeValueInfo(vw, v));
  });
  w.message(MODEL.opsetImport, (ow) => ow.string(OPSET_ID.domain, "").int(OPSET_ID.version, ONNX_OPSET));
  return w.finish();
}

function encodeNode(w: ProtoWriter, n: OnnxNode): void {
  w.strings(NODE.input, n.inputs);
  w.strings(NODE.output, n.outputs);
  w.string(NODE.name, n.name);
  w.string(NODE.opType, n.opType);
  for (const a of n.attributes) w.message(NODE.attribute, (aw) => encodeAttribute(aw, a));
}

function encodeAttribute(w: ProtoWriter, a: Attribute): void {
  w.string(ATTRIBUTE.name, a.name);
  w.int(ATTRIBUTE.type, ATTRIBUTE_TYPE[a.type]);
  switch (a.type) {
    case "int": w.int(ATTRIBUTE.i, a.value); break;
    case "string": w.string(ATTRIBUTE.s, a.value); break;
    case "ints": w.ints(ATTRIBUTE.ints, a.value); break;
    case "strings": w.strings(ATTRIBUTE.strings, a.value); break;
  }
}

const RAW: Record<Initializer["dataType"], (v: ArrayLike<number>) => Uint8Array> = {
  float: float32LE,
  int32: int32LE,
  int64: (v) => int64LE(Array.from(v)),
};

function encodeTensor(w: ProtoWriter, t: Initializer): void {
  w.ints(TENSOR.dims, t.dims);
  w.int(TENSOR.dataType, DATA_TYPE[t.dataType]);
  w.string(TENSOR.name, t.name);
  w.bytes(TENSOR.rawData, RAW[t.dataType](t.data));
}

function encodeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(VALUE_INFO.name, v.name);
  w.message(VALUE_INFO.type, (tw) => tw.message(TYPE.tensorType, (ttw) => {
    ttw.int(TENSOR_TYPE.elemType, DATA_TYPE[v.elemType]);
    ttw.message(TENSOR_TYPE.shape, (sw) => {
      for (const d of v.dims) {
        sw.message(SHAPE.dim, (dw) => (typeof d === "number" ? dw.int(DIMENSION.dimValue, d) : dw.string(DIMENSION.dimParam, d)));
      }
    });
  }));
}
