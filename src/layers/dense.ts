/**
 * The Dense layer: y = act(x · kernel + bias), on one vector per row or on every step of a sequence (the same
 * weights at every step, as Keras's Dense on a 3-D input), as the head or anywhere below it.
 *
 * On a sequence its buffers are step-indexed, time-major: step t's rows t·B … (t + 1)·B − 1, so a layer above
 * can read any step's output (truncated BPTT keeps history) and a call over steps [t0, t1) is one product over
 * its (t1 − t0)·B rows.
 *
 * Legend: M rows of a call, r0 its first row, In input features, D units; cap steps, B batch.
 * Every activation's derivative is taken from its saved output (σ' = y(1-y), tanh' = 1-y², relu' = [y>0],
 * softmax: dz = p ⊙ (g − Σ g·p) per row), and the pre-activation (logit) is kept too, for the stable sigmoid +
 * binary cross-entropy and softmax + categorical cross-entropy, computed from logits.
 */
import type { FloatArray, DType } from "../tensor/tensor.js";
import { allocate } from "../tensor/tensor.js";
import { matmulNN, matmulNT, matmulTN, addBiasRows, sumRowsInto, fastSigmoid, fastTanh } from "../tensor/kernels.js";
import { exp } from "../tensor/math.js";
import { ValueError, checkKeys, checkPositiveInt, fmtValue } from "../errors.js";
import { glorotUniform, type Rng } from "../init.js";
import type { EngineLayer, Flow, GradStream, PassContext, Stream } from "./layer.js";

export type Activation = "linear" | "sigmoid" | "tanh" | "relu" | "softmax";
export const ACTIVATIONS: readonly Activation[] = ["linear", "sigmoid", "tanh", "relu", "softmax"];

export interface DenseOptions {
  /** Number of output units D. */
  units: number;
  /** Default "linear". */
  activation?: Activation;
  /** Add a bias. Default true; false (Keras `use_bias=False`) leaves the bias out of the weights. */
  useBias?: boolean;
  /** Input features; needed on the first layer (a Dense on every step of the input) unless the model is built from data. */
  inputDim?: number;
}

/** Buffers for M rows (cap·B on a sequence, B on vectors), allocated once per row count and reused. */
export class DenseWorkspace {
  readonly logits: FloatArray; // (M, D) pre-activation
  readonly out: FloatArray;    // (M, D) activation
  readonly dOut: FloatArray;   // (M, D) dL/d(out), then (in place) dL/d(logits)
  readonly dIn: FloatArray;    // (M, In) dL/d(input)
  /** The batch rows of a step, and whether the rows are a sequence's (time-major) or one per batch row. */
  B = 0;
  seq = false;
  constructor(dtype: DType, public M: number, D: number, In: number) {
    this.logits = allocate(dtype, M * D);
    this.out = allocate(dtype, M * D);
    this.dOut = allocate(dtype, M * D);
    this.dIn = allocate(dtype, M * In);
  }
}

/**
 * A fully connected layer.
 *
 * @example
 * new Dense({ units: 1, activation: "sigmoid" })
 */
export class Dense implements EngineLayer<DenseWorkspace> {
  readonly kind = "dense" as const;
  readonly recurrent = false;
  readonly units: number;
  readonly activation: Activation;
  readonly useBias: boolean;
  inputDim: number | undefined;

  kernel!: FloatArray;             // (In, D)
  bias: FloatArray | null = null;  // (D), null without useBias
  dKernel!: FloatArray;            // (In, D)
  dBias: FloatArray | null = null; // (D)
  /** The model this layer belongs to (a layer's weights live in one model's buffers). */
  owner: object | null = null;

  constructor(options: DenseOptions) {
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`Dense options: expected an object like { units: 1 }, got ${fmtValue(options)}`);
    }
    checkKeys("Dense", options, ["units", "activation", "useBias", "inputDim"]);
    this.units = checkPositiveInt("Dense units", options.units);
    this.inputDim = options.inputDim === undefined ? undefined : checkPositiveInt("Dense inputDim", options.inputDim);
    const act = options.activation ?? "linear";
    if (!ACTIVATIONS.includes(act)) {
      throw new ValueError(`Dense activation: expected one of ${ACTIVATIONS.map((a) => `"${a}"`).join(", ")}, got ${fmtValue(act)}`);
    }
    this.activation = act;
    const ub = options.useBias ?? true;
    if (typeof ub !== "boolean") throw new ValueError(`Dense useBias: expected true or false, got ${fmtValue(ub)}`);
    this.useBias = ub;
  }

  /** Number of parameters: In·D (+ D with a bias). */
  paramCount(inputDim = this.inputDim!): number {
    return inputDim * this.units + (this.useBias ? this.units : 0);
  }

  /** Shapes in getWeights order, for `inputDim` input features (default: the built layer's). */
  weightShapes(inputDim = this.inputDim!): number[][] {
    return this.useBias ? [[inputDim, this.units], [this.units]] : [[inputDim, this.units]];
  }

  weightNames(): string[] {
    return this.useBias ? ["kernel", "bias"] : ["kernel"];
  }

  bind(params: FloatArray, grads: FloatArray, off: number): number {
    const nk = this.inputDim! * this.units, nb = this.useBias ? this.units : 0;
    this.kernel = params.subarray(off, off + nk);
    this.dKernel = grads.subarray(off, off + nk);
    this.bias = nb ? params.subarray(off + nk, off + nk + nb) : null;
    this.dBias = nb ? grads.subarray(off + nk, off + nk + nb) : null;
    return off + nk + nb;
  }

  initialize(rng: Rng): void {
    glorotUniform(this.kernel, 0, this.inputDim!, this.units, rng);
    this.bias?.fill(0);
  }

  // The layer protocol (layer.ts).

  /** Vectors to vectors, sequences to sequences (every step through the same weights). */
  flowFor(input: Flow): Flow {
    return input;
  }

  workspace(dtype: DType, B: number, cap: number, input: Flow, _masked: boolean, current: DenseWorkspace | null): DenseWorkspace {
    const seq = input === "sequence";
    const ws = denseWorkspace(this, dtype, seq ? cap * B : B, current);
    ws.B = B;
    ws.seq = seq;
    return ws;
  }

  forward(ws: DenseWorkspace, x: Stream, t0: number, t1: number, _pass: PassContext, out: Stream): void {
    const In = this.inputDim!;
    const r0 = ws.seq ? t0 * ws.B : 0, M = ws.seq ? (t1 - t0) * ws.B : ws.B;
    denseForward(this, ws, M, x.buf, x.off + r0 * In, In, r0);
    out.buf = ws.out;
    out.off = 0;
  }

  backward(ws: DenseWorkspace, x: Stream, _tb: number, t1: number, dOut: GradStream, pass: PassContext, dx: GradStream): void {
    // The rows that have a gradient: a sequence's steps [from, t1) (all the layer above sent), or the B vectors.
    const In = this.inputDim!, D = this.units, from = ws.seq ? dOut.from : 0;
    const r0 = from * ws.B, M = ws.seq ? (t1 - from) * ws.B : ws.B;
    if (dOut.buf !== ws.dOut || dOut.off !== r0 * D) {
      // From a layer above (its dL/dx): into our rows, which backward turns into dL/d(logits) in place.
      const src = dOut.buf, so = dOut.off, d = ws.dOut, o = r0 * D;
      for (let k = 0; k < M * D; k++) d[o + k] = src[so + k]!;
    }
    denseBackward(this, ws, M, x.buf, x.off + r0 * In, In, pass.logitGrad, r0, pass.needDx);
    dx.buf = ws.dIn;
    dx.off = r0 * In;
    dx.from = from;
  }

  /**
   * A sequence's outputs of the kept steps: the layer above reads them as its input, and backward takes the
   * activation's derivative from them (its inputs are the layer below's, which shifts its own).
   */
  shiftHistory(ws: DenseWorkspace, drop: number, keep: number): void {
    if (!ws.seq) return;
    const B = ws.B, D = this.units;
    ws.out.copyWithin(0, drop * B * D, (drop + keep) * B * D);
  }
}

/**
 * A workspace for M rows of the layer: `current` when it holds at least M rows (a short last batch or
 * window reuses the buffers), else a new one.
 */
export function denseWorkspace(layer: Dense, dtype: DType, M: number, current: DenseWorkspace | null): DenseWorkspace {
  if (current && current.out.length >= M * layer.units && current.dIn.length >= M * layer.inputDim!) {
    current.M = M;
    return current;
  }
  return new DenseWorkspace(dtype, M, layer.units, layer.inputDim!);
}

/** logits = x · kernel + bias, out = act(logits), for M rows of x (stride ldx) into rows r0 … r0 + M − 1. */
export function denseForward(
  layer: Dense, ws: DenseWorkspace, M: number,
  x: FloatArray, xOff: number, ldx: number, // (M, In)
  r0 = 0,
): void {
  const D = layer.units, In = layer.inputDim!;
  const { logits, out } = ws;
  const o = r0 * D;
  matmulNN(M, D, In, x, xOff, ldx, layer.kernel, 0, D, logits, o, D, false);
  if (layer.bias) addBiasRows(M, D, logits, o, D, layer.bias, 0);
  const n = o + M * D;
  switch (layer.activation) {
    case "linear": for (let k = o; k < n; k++) out[k] = logits[k]!; break;
    // The gates' σ and tanh: arithmetic only, so the same bits in every engine (see tensor/math.ts).
    case "sigmoid": for (let k = o; k < n; k++) out[k] = fastSigmoid(logits[k]!); break;
    case "tanh": for (let k = o; k < n; k++) out[k] = fastTanh(logits[k]!); break;
    case "relu": for (let k = o; k < n; k++) { const v = logits[k]!; out[k] = v > 0 ? v : 0; } break;
    case "softmax": softmaxRows(r0, M, D, logits, out); break;
  }
}

/** p = softmax(z) over each row's D units for rows r0 … r0 + M − 1, the largest logit subtracted first (no overflow). */
function softmaxRows(r0: number, M: number, D: number, z: FloatArray, p: FloatArray): void {
  for (let r = r0; r < r0 + M; r++) {
    const o = r * D;
    let max = z[o]!;
    for (let k = 1; k < D; k++) if (z[o + k]! > max) max = z[o + k]!;
    let sum = 0;
    for (let k = 0; k < D; k++) { const e = exp(z[o + k]! - max); p[o + k] = e; sum += e; }
    const inv = 1 / sum;
    for (let k = 0; k < D; k++) p[o + k] = p[o + k]! * inv;
  }
}

/**
 * Backward of `denseForward`. With `dOutIsLogitGrad` false, ws.dOut holds dL/d(out) and is turned into
 * dL/d(logits) in place; with true it already holds dL/d(logits) (the fused sigmoid + BCE path).
 * Accumulates dKernel, dBias and writes ws.dIn = dL/dx.
 */
export function denseBackward(
  layer: Dense, ws: DenseWorkspace, M: number,
  x: FloatArray, xOff: number, ldx: number, // (M, In)
  dOutIsLogitGrad: boolean,
  r0 = 0,       // the rows' first index in the workspace
  needDx = true, // false: nobody reads dIn
): void {
  const D = layer.units, In = layer.inputDim!;
  const { out, dOut, dIn } = ws;
  const o0 = r0 * D, n = o0 + M * D;
  if (!dOutIsLogitGrad) {
    switch (layer.activation) {
      case "linear": break;
      case "sigmoid": for (let k = o0; k < n; k++) { const y = out[k]!; dOut[k] = dOut[k]! * y * (1 - y); } break;
      case "tanh": for (let k = o0; k < n; k++) { const y = out[k]!; dOut[k] = dOut[k]! * (1 - y * y); } break;
      case "relu": for (let k = o0; k < n; k++) if (!(out[k]! > 0)) dOut[k] = 0; break;
      case "softmax": // dz_j = p_j (g_j − Σ_k g_k p_k), row by row
        for (let r = r0; r < r0 + M; r++) {
          const o = r * D;
          let dot = 0;
          for (let k = 0; k < D; k++) dot += dOut[o + k]! * out[o + k]!;
          for (let k = 0; k < D; k++) dOut[o + k] = out[o + k]! * (dOut[o + k]! - dot);
        }
        break;
    }
  }
  // dKernel (In, D) += xᵀ · dLogits over the M rows
  matmulTN(In, D, M, x, xOff, ldx, dOut, o0, D, layer.dKernel, 0, D, true);
  if (layer.dBias) sumRowsInto(M, D, dOut, o0, D, layer.dBias, 0);
  // dIn (M, In) = dLogits · kernelᵀ
  if (needDx) matmulNT(M, In, D, dOut, o0, D, layer.kernel, 0, D, dIn, r0 * In, In, false);
}
