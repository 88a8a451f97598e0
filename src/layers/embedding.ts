/**
 * The Embedding layer (Keras's `Embedding`): integer ids [B, T] in, one learned vector per id out, [B, T, D]. The
 * model's first layer; its input is the ids, which validate.ts checks (integers in [0, V), position named).
 *
 * Forward copies row E[id] for every (step, row); backward scatter-adds each output row's gradient into the row of
 * its id, dE[id] += dOut, so a step costs B·T·D whatever the vocabulary (no dense V×D work). With `maskZero`, id 0
 * is padding: Keras's mask from id 0 (the engine reads it as Masking with value 0 on the ids).
 *
 * Legend: V vocabulary (inputDim), D units (outputDim), B batch, T timesteps, cap the workspace's steps.
 */
import type { DType, FloatArray } from "../tensor/tensor.js";
import { allocate } from "../tensor/tensor.js";
import { ValueError, checkKeys, checkPositiveInt, fmtValue } from "../errors.js";
import type { Rng } from "../init.js";
import type { EngineLayer, Flow, GradStream, PassContext, Stream } from "./layer.js";

export interface EmbeddingOptions {
  /** The vocabulary size V: ids are integers in [0, V). */
  inputDim: number;
  /** Units D of each id's vector. */
  outputDim: number;
  /** Id 0 is padding: steps whose id is 0 are masked for the layers above (Keras `mask_zero`). Default false. */
  maskZero?: boolean;
  /**
   * "uniform" (default, Keras's: U(−0.05, 0.05)), "normal" (N(0, 1), PyTorch nn.Embedding's) or "zeros".
   */
  embeddingsInitializer?: EmbeddingInitializer;
}

export type EmbeddingInitializer = "uniform" | "normal" | "zeros";
export const EMBEDDING_INITIALIZERS: readonly EmbeddingInitializer[] = ["uniform", "normal", "zeros"];

/** Buffers for one (B, capacity) shape. */
export class EmbeddingWorkspace {
  readonly out: FloatArray;   // (cap, B, D): step t's rows at t·B·D
  readonly noGrad: FloatArray; // (cap, B, 1): zeros, the ids' "gradient" (ids are not differentiable); nothing writes it
  constructor(dtype: DType, public B: number, public cap: number, D: number) {
    this.out = allocate(dtype, cap * B * D);
    this.noGrad = allocate(dtype, cap * B);
  }
}

/**
 * A table of learned vectors, one per id.
 *
 * @example
 * new Sequential([new Embedding({ inputDim: 10000, outputDim: 32, maskZero: true }), new LSTM({ units: 32 }), new Dense({ units: 1, activation: "sigmoid" })]);
 */
export class Embedding implements EngineLayer<EmbeddingWorkspace> {
  readonly kind = "embedding" as const;
  readonly recurrent = false;
  /** The input is ids, one per step (the model's x is [B, T]). */
  readonly readsIds = true;
  /** The vocabulary size V (Keras's name; not the features of a step, which are one id). */
  inputDim: number;
  readonly units: number;
  readonly maskZero: boolean;
  readonly embeddingsInitializer: EmbeddingInitializer;
  embeddings!: FloatArray;  // (V, D)
  dEmbeddings!: FloatArray; // (V, D)
  owner: object | null = null;

  constructor(options: EmbeddingOptions) {
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`Embedding options: expected an object like { inputDim: 10000, outputDim: 32 }, got ${fmtValue(options)}`);
    }
    checkKeys("Embedding", options, ["inputDim", "outputDim", "maskZero", "embeddingsInitializer"]);
    this.inputDim = checkPositiveInt("Embedding inputDim", options.inputDim);
    this.units = checkPositiveInt("Embedding outputDim", options.outputDim);
    const mz = options.maskZero ?? false;
    if (typeof mz !== "boolean") throw new ValueError(`Embedding maskZero: expected true or false, got ${fmtValue(mz)}`);
    this.maskZero = mz;
    const init = options.embeddingsInitializer ?? "uniform";
    if (!EMBEDDING_INITIALIZERS.includes(init)) {
      throw new ValueError(`Embedding embeddingsInitializer: expected one of ${EMBEDDING_INITIALIZERS.map((s) => `"${s}"`).join(", ")}, got ${fmtValue(init)}`);
    }
    this.embeddingsInitializer = init;
  }

  /** Units D of each vector (Keras's name). */
  get outputDim(): number {
    return this.units;
  }

  paramCount(): number {
    return this.inputDim * this.units;
  }

  weightShapes(): number[][] {
    return [[this.inputDim, this.units]];
  }

  weightNames(): string[] {
    return ["embeddings"];
  }

  bind(params: FloatArray, grads: FloatArray, off: number): number {
    const n = this.inputDim * this.units;
    this.embeddings = params.subarray(off, off + n);
    this.dEmbeddings = grads.subarray(off, off + n);
    return off + n;
  }

  initialize(rng: Rng): void {
    const E = this.embeddings, n = E.length;
    if (this.embeddingsInitializer === "uniform") for (let k = 0; k < n; k++) E[k] = (2 * rng.uniform() - 1) * 0.05;
    else if (this.embeddingsInitializer === "normal") for (let k = 0; k < n; k++) E[k] = rng.normal();
    else E.fill(0);
  }

  flowFor(input: Flow): Flow | string {
    // The engine feeds the first layer a sequence of ids; anything above the first layer is not ids.
    return input === "sequence" ? "sequence" : "an Embedding reads the model's ids and must be the first layer";
  }

  workspace(dtype: DType, B: number, cap: number, _input: Flow, _masked: boolean, current: EmbeddingWorkspace | null): EmbeddingWorkspace {
    if (current && current.out.length >= cap * B * this.units) {
      current.B = B;
      current.cap = Math.floor(current.out.length / (B * this.units));
      return current;
    }
    return new EmbeddingWorkspace(dtype, B, cap, this.units);
  }

  /** out[t, b] = E[id(t, b)] for steps [t0, t1); x holds the ids (checked integers in [0, V)), one per (step, row). */
  forward(ws: EmbeddingWorkspace, x: Stream, t0: number, t1: number, _pass: PassContext, out: Stream): void {
    const B = ws.B, D = this.units, E = this.embeddings, ids = x.buf, o = ws.out;
    for (let q = t0 * B; q < t1 * B; q++) {
      const e = ids[x.off + q]! * D, to = q * D;
      for (let j = 0; j < D; j++) o[to + j] = E[e + j]!;
    }
    out.buf = o;
    out.off = 0;
  }

  /** dE[id(t, b)] += dOut[t, b] for the steps with a gradient: B·T·D work, the vocabulary untouched. */
  backward(ws: EmbeddingWorkspace, x: Stream, _tb: number, t1: number, dOut: GradStream, _pass: PassContext, dx: GradStream): void {
    const B = ws.B, D = this.units, dE = this.dEmbeddings, ids = x.buf, d = dOut.buf;
    for (let q = dOut.from * B; q < t1 * B; q++) {
      const e = ids[x.off + q]! * D, from = dOut.off + (q - dOut.from * B) * D;
      for (let j = 0; j < D; j++) dE[e + j] = dE[e + j]! + d[from + j]!;
    }
    dx.buf = ws.noGrad;
    dx.off = dOut.from * B;
    dx.from = dOut.from;
  }

  shiftHistory(ws: EmbeddingWorkspace, drop: number, keep: number): void {
    const BD = ws.B * this.units;
    ws.out.copyWithin(0, drop * BD, (drop + keep) * BD);
  }
}
