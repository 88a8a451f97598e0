/**
 * The Dense head: y = act(x · kernel + bias), applied to the last step's h or to every step's h.
 *
 * Legend: M rows (B, or T·B for a per-step head, time-major), In input features, D units.
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

export type Activation = "linear" | "sigmoid" | "tanh" | "relu" | "softmax";
export const ACTIVATIONS: readonly Activation[] = ["linear", "sigmoid", "tanh", "relu", "softmax"];

export interface DenseOptions {
  /** Number of output units D. */
  units: number;
  /** Default "linear". */
  activation?: Activation;
  /** Add a bias. Default true; false (Keras `use_bias=False`) leaves the bias out of the weights. */
  useBias?: boolean;
}

/** Buffers for M rows, allocated once per row count and reused. */
export class DenseWorkspace {
  readonly logits: FloatArray; // (M, D) pre-activation
  readonly out: FloatArray;    // (M, D) activation
  readonly dOut: FloatArray;   // (M, D) dL/d(out), then (in place) dL/d(logits)
  readonly dIn: FloatArray;    // (M, In) dL/d(input)
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
export class Dense {
  readonly kind = "dense" as const;
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
    checkKeys("Dense", options, ["units", "activation", "useBias"]);
    this.units = checkPositiveInt("Dense units", options.units);
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

/** logits = x · kernel + bias, out = act(logits), for M rows of x (stride ldx). */
export function denseForward(
  layer: Dense, ws: DenseWorkspace, M: number,
  x: FloatArray, xOff: number, ldx: number, // (M, In)
): void {
  const D = layer.units, In = layer.inputDim!;
  const { logits, out } = ws;
  matmulNN(M, D, In, x, xOff, ldx, layer.kernel, 0, D, logits, 0, D, false);
  if (layer.bias) addBiasRows(M, D, logits, 0, D, layer.bias, 0);
  const n = M * D;
  switch (layer.activation) {
    case "linear": for (let k = 0; k < n; k++) out[k] = logits[k]!; break;
    // The gates' σ and tanh: arithmetic only, so the same bits in every engine (see tensor/math.ts).
    case "sigmoid": for (let k = 0; k < n; k++) out[k] = fastSigmoid(logits[k]!); break;
    case "tanh": for (let k = 0; k < n; k++) out[k] = fastTanh(logits[k]!); break;
    case "relu": for (let k = 0; k < n; k++) { const v = logits[k]!; out[k] = v > 0 ? v : 0; } break;
    case "softmax": softmaxRows(M, D, logits, out); break;
  }
}

/** p = softmax(z) over each row's D units, the largest logit subtracted first (no overflow). */
function softmaxRows(M: number, D: number, z: FloatArray, p: FloatArray): void {
  for (let r = 0; r < M; r++) {
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
): void {
  const D = layer.units, In = layer.inputDim!;
  const { out, dOut, dIn } = ws;
  const n = M * D;
  if (!dOutIsLogitGrad) {
    switch (layer.activation) {
      case "linear": break;
      case "sigmoid": for (let k = 0; k < n; k++) { const y = out[k]!; dOut[k] = dOut[k]! * y * (1 - y); } break;
      case "tanh": for (let k = 0; k < n; k++) { const y = out[k]!; dOut[k] = dOut[k]! * (1 - y * y); } break;
      case "relu": for (let k = 0; k < n; k++) if (!(out[k]! > 0)) dOut[k] = 0; break;
      case "softmax": // dz_j = p_j (g_j − Σ_k g_k p_k), row by row
        for (let r = 0; r < M; r++) {
          const o = r * D;
          let dot = 0;
          for (let k = 0; k < D; k++) dot += dOut[o + k]! * out[o + k]!;
          for (let k = 0; k < D; k++) dOut[o + k] = out[o + k]! * (dOut[o + k]! - dot);
        }
        break;
    }
  }
  // dKernel (In, D) += xᵀ · dLogits over the M rows
  matmulTN(In, D, M, x, xOff, ldx, dOut, 0, D, layer.dKernel, 0, D, true);
  if (layer.dBias) sumRowsInto(M, D, dOut, 0, D, layer.dBias, 0);
  // dIn (M, In) = dLogits · kernelᵀ
  matmulNT(M, In, D, dOut, 0, D, layer.kernel, 0, D, dIn, 0, In, false);
}
