/**
 * What the recurrent layers (lstm.ts, gru.ts) share around their cells: the layer protocol's forward and backward
 * for a cell that runs steps in reading order (Keras 3's goBackwards reversal and masked output around it), the
 * buffers those need, and the option checks.
 *
 * A cell's own forward and backward (`runForward`, `runBackward`) see the input in reading order, the mask flags in
 * the same order, and write h_t at slot t + 1 of `hs`; everything about goBackwards and the masked output is here,
 * once, for every cell.
 *
 * Legend: B batch, I input features, H units, cap the workspace's steps.
 */
import type { DType, FloatArray } from "../tensor/tensor.js";
import { allocate } from "../tensor/tensor.js";
import { ValueError, checkKeys, checkPositiveInt, fmtValue } from "../errors.js";
import { checkInitializer, type InitializerName } from "../init.js";
import type { GradStream, PassContext, RecurrentWorkspace, Stream } from "./layer.js";
import { maskedOutputs, maskedOutputsBackward, shiftMaskedOutputs } from "./masking.js";

/** The buffers of a recurrent workspace that this file reads and writes (the cell's own are its business). */
export interface SequenceBuffers extends RecurrentWorkspace {
  readonly hs: FloatArray;   // (cap + 1, B, H): slot 0 is the initial h, slot t + 1 is h_t
  readonly dxs: FloatArray;  // (cap, B, I): dL/dx in reading order
  // Dropout's masked copies (allocated only for a layer that has it).
  xd: FloatArray | null;     // (cap, B, I): x_t ⊙ xMask
  hd: FloatArray | null;     // (cap, B, H): h_{t-1} ⊙ hMask at slot t
  // Masking: Keras's masked output, what the layer above and the loss read (allocated only when masked).
  out: FloatArray | null;    // (cap, B, H) per step, or (B, H) for the last step only
  zeroed: Uint8Array | null; // (cap, B) or (B): 1 where the output is zeros
  seen: Uint8Array | null;   // (B) scratch
  // goBackwards (allocated only for such a layer): the input and its mask in reading order, and dL/dx back in time order.
  xr: FloatArray | null;     // (cap, B, I): step t is input step t0 + t1 − 1 − t of the call
  vr: Uint8Array | null;     // (cap, B)
  dxt: FloatArray | null;    // (cap, B, I)
  /** The steps [t0, t1) of the last forward call (goBackwards reverses within them). */
  t0: number;
  t1: number;
}

/** The options of a recurrent layer that this file acts on. */
export interface SequenceLayer<W extends SequenceBuffers> {
  readonly units: number;
  inputDim: number | undefined;
  readonly returnSequences: boolean;
  readonly goBackwards: boolean;
  readonly zeroOutputForMask: boolean;
  readonly dropout: number;
  readonly recurrentDropout: number;
  /**
   * The cell's forward over steps [t0, t1) of `xs` (reading order), from the state at slot t0; `infer`: no backward
   * follows (PassContext.infer), so the per-step activations need not be kept.
   */
  runForward(ws: W, xs: FloatArray, xOff: number, t0: number, t1: number, valid: Uint8Array | null, infer: boolean): void;
  /**
   * The cell's backward over [tb, t1): from above, per step (`dhSeq`, step t ≥ from at off + (t − from)·B·H) or
   * for the last step (`dhLast`, (B, H) at off), one of them null.
   */
  runBackward(
    ws: W, xs: FloatArray, xOff: number, tb: number, t1: number,
    dhSeq: GradStream | null, dhLast: GradStream | null, pass: PassContext, valid: Uint8Array | null,
  ): void;
}

/**
 * The protocol's forward of a recurrent layer: a goBackwards layer reads its steps reversed (input and mask into
 * reading order, where everything after stays: state, output, backward, which is the order Keras returns); the cell
 * runs; under a mask the output is Keras's masked output (which the state is not), else h itself.
 */
export function sequenceForward<W extends SequenceBuffers>(
  layer: SequenceLayer<W>, ws: W, x: Stream, t0: number, t1: number, pass: PassContext, out: Stream,
): void {
  let xs = x.buf, xOff = x.off, valid = pass.valid;
  ws.t0 = t0;
  ws.t1 = t1;
  if (layer.goBackwards) {
    const B = ws.B, I = layer.inputDim!, xr = ws.xr!, n = B * I;
    for (let t = t0; t < t1; t++) {
      const s = t0 + t1 - 1 - t, to = t * n, from = xOff + s * n;
      for (let k = 0; k < n; k++) xr[to + k] = xs[from + k]!;
      if (valid) for (let b = 0; b < B; b++) ws.vr![t * B + b] = valid[s * B + b]!;
    }
    xs = xr; xOff = 0;
    if (valid) valid = ws.vr!;
  }
  layer.runForward(ws, xs, xOff, t0, t1, valid, pass.infer);
  const BH = ws.B * layer.units;
  if (valid) {
    // Zeros before a row's first kept step of the call, or at every masked step with zeroOutputForMask.
    maskedOutputs(ws.B, layer.units, valid, ws.hs, t0, t1, layer.returnSequences, ws.out!, ws.zeroed!, ws.seen!, layer.zeroOutputForMask);
    out.buf = ws.out!;
    out.off = 0;
  } else {
    out.buf = ws.hs; // slot t + 1 holds h_t
    out.off = layer.returnSequences ? BH : t1 * BH;
  }
}

/** The protocol's backward of a recurrent layer, the mirror of `sequenceForward`; dx in the input's order. */
export function sequenceBackward<W extends SequenceBuffers>(
  layer: SequenceLayer<W>, ws: W, x: Stream, tb: number, t1: number, dOut: GradStream, pass: PassContext, dx: GradStream,
): void {
  // A zero output sends nothing back (it did not depend on the state).
  if (pass.valid) maskedOutputsBackward(ws.B, layer.units, ws.zeroed!, dOut, Math.max(tb, dOut.from), t1, layer.returnSequences);
  const back = layer.goBackwards, xs = back ? ws.xr! : x.buf, xOff = back ? 0 : x.off;
  const valid = back && pass.valid ? ws.vr! : pass.valid;
  if (layer.returnSequences) layer.runBackward(ws, xs, xOff, tb, t1, dOut, null, pass, valid);
  else layer.runBackward(ws, xs, xOff, tb, t1, null, dOut, pass, valid);
  const B = ws.B, I = layer.inputDim!, n = B * I;
  dx.buf = ws.dxs; // step t at t·B·I
  if (back && pass.needDx) {
    // dL/dx in reading order, back into the input's order (the whole call: no truncated BPTT reads backwards).
    const d = ws.dxt!, t0 = ws.t0, t1f = ws.t1;
    for (let t = tb; t < t1; t++) {
      const to = (t0 + t1f - 1 - t) * n, from = t * n;
      for (let k = 0; k < n; k++) d[to + k] = ws.dxs[from + k]!;
    }
    dx.buf = d;
  }
  dx.off = tb * n;
  dx.from = tb;
}

/** Moves `keep` steps of the shared buffers from step `drop` to the front (truncated BPTT); the cell shifts its own. */
export function shiftSequenceBuffers(layer: SequenceLayer<SequenceBuffers>, ws: SequenceBuffers, drop: number, keep: number): void {
  const B = ws.B, BH = B * layer.units, BI = B * layer.inputDim!;
  ws.xd?.copyWithin(0, drop * BI, (drop + keep) * BI); // dropout's masked copies are history too
  ws.hd?.copyWithin(0, drop * BH, (drop + keep) * BH);
  ws.hs.copyWithin(0, drop * BH, (drop + keep + 1) * BH);
  if (layer.returnSequences) shiftMaskedOutputs(B, layer.units, ws.out, ws.zeroed, drop, keep);
}

/** Allocates the shared buffers a layer's options need for ws.cap steps of B rows (keeping those that fit). */
export function sequenceExtras(layer: SequenceLayer<SequenceBuffers>, ws: SequenceBuffers, dtype: DType, B: number, masked: boolean): void {
  const I = layer.inputDim!, H = layer.units, n = ws.cap * B;
  if (layer.dropout > 0 && (!ws.xd || ws.xd.length < n * I)) ws.xd = allocate(dtype, n * I);
  if (layer.recurrentDropout > 0 && (!ws.hd || ws.hd.length < n * H)) ws.hd = allocate(dtype, n * H);
  if (layer.goBackwards) {
    if (!ws.xr || ws.xr.length < n * I) ws.xr = allocate(dtype, n * I);
    if (!ws.dxt || ws.dxt.length < n * I) ws.dxt = allocate(dtype, n * I);
    if (masked && (!ws.vr || ws.vr.length < n)) ws.vr = new Uint8Array(n);
  }
  if (masked) {
    // Masking's output buffers: every step's, or the last step's.
    const rows = layer.returnSequences ? n : B;
    if (!ws.out || ws.out.length < rows * H) ws.out = allocate(dtype, rows * H);
    if (!ws.zeroed || ws.zeroed.length < rows) ws.zeroed = new Uint8Array(rows);
    if (!ws.seen || ws.seen.length < B) ws.seen = new Uint8Array(B);
  }
}

/**
 * Dropout on the inputs of steps [t0, t1): xd = x_t ⊙ mask (one mask per row, every step), kept for the kernel's
 * gradient in backward. Returns nothing: the cell reads xd.
 */
export function dropInputs(B: number, I: number, xs: FloatArray, xOff: number, t0: number, t1: number, xm: Float64Array, xd: FloatArray): void {
  for (let t = t0; t < t1; t++) {
    for (let b = 0; b < B; b++) {
      const o = (t * B + b) * I;
      for (let i = 0; i < I; i++) xd[o + i] = xs[xOff + o + i]! * xm[b * I + i]!;
    }
  }
}

/** The backward of `dropInputs` on dL/dx rows [tb, t1): dxs ⊙= mask. */
export function dropInputGrads(B: number, I: number, dxs: FloatArray, tb: number, t1: number, xm: Float64Array): void {
  for (let t = tb; t < t1; t++) {
    for (let b = 0; b < B; b++) {
      const o = (t * B + b) * I;
      for (let i = 0; i < I; i++) dxs[o + i] = dxs[o + i]! * xm[b * I + i]!;
    }
  }
}

/** σ on the gates: "sigmoid" (Keras ≥ 2.3, PyTorch) or "hardSigmoid", clip(0.2·x + 0.5, 0, 1) (TensorFlow.js's, Keras 2's). */
export type RecurrentActivation = "sigmoid" | "hardSigmoid";
export const RECURRENT_ACTIVATIONS: readonly RecurrentActivation[] = ["sigmoid", "hardSigmoid"];

/** The options every recurrent layer has, checked and defaulted (Keras's defaults). */
export interface RecurrentOptions {
  units: number;
  inputDim: number | undefined;
  returnSequences: boolean;
  stateful: boolean;
  batchSize: number | undefined;
  kernelInitializer: InitializerName;
  recurrentInitializer: InitializerName;
  recurrentActivation: RecurrentActivation;
  useBias: boolean;
  dropout: number;
  recurrentDropout: number;
  goBackwards: boolean;
  zeroOutputForMask: boolean;
}

/**
 * A recurrent layer's options checked at the boundary: an object with only `known` keys, each shared option's value
 * (errors name the layer and the option: "GRU dropout: expected a rate in [0, 1), got 1"). The layer checks its own.
 */
export function recurrentOptions(layer: string, options: unknown, known: readonly string[]): RecurrentOptions {
  if (typeof options !== "object" || options === null) {
    throw new ValueError(`${layer} options: expected an object like { units: 10 }, got ${fmtValue(options)}`);
  }
  checkKeys(layer, options, known);
  const o = options as Record<string, unknown>;
  const ra = o.recurrentActivation ?? "sigmoid";
  if (!RECURRENT_ACTIVATIONS.includes(ra as RecurrentActivation)) {
    throw new ValueError(`${layer} recurrentActivation: expected one of ${RECURRENT_ACTIVATIONS.map((a) => `"${a}"`).join(", ")}, got ${fmtValue(ra)}`);
  }
  return {
    units: checkPositiveInt(`${layer} units`, o.units),
    inputDim: o.inputDim === undefined ? undefined : checkPositiveInt(`${layer} inputDim`, o.inputDim),
    returnSequences: bool(`${layer} returnSequences`, o.returnSequences, false),
    stateful: bool(`${layer} stateful`, o.stateful, false),
    batchSize: o.batchSize === undefined ? undefined : checkPositiveInt(`${layer} batchSize`, o.batchSize),
    kernelInitializer: checkInitializer(`${layer} kernelInitializer`, o.kernelInitializer ?? "glorotUniform"),
    recurrentInitializer: checkInitializer(`${layer} recurrentInitializer`, o.recurrentInitializer ?? "orthogonal"),
    recurrentActivation: ra as RecurrentActivation,
    useBias: bool(`${layer} useBias`, o.useBias, true),
    dropout: rate(`${layer} dropout`, o.dropout),
    recurrentDropout: rate(`${layer} recurrentDropout`, o.recurrentDropout),
    goBackwards: bool(`${layer} goBackwards`, o.goBackwards, false),
    zeroOutputForMask: bool(`${layer} zeroOutputForMask`, o.zeroOutputForMask, false),
  };
}

/**
 * Bytes of gate rows a forward-only pass (PassContext.infer) keeps at once: it projects the input a block of steps at a
 * time into the front of the gate buffers and runs the block's recurrence there, so that the block is still in cache
 * when the recurrent product adds into it and the gate kernel reads it back. A training pass projects every step at
 * once into (T, B, G), which backward reads: at S4's shape (B 64, T 100, H 256, float32) that is 26 MB, out of cache.
 * Not smaller: a block's projection packs the kernel W again (S4's 512 KB), and the products' fixed costs recur per
 * block; at S4 blocks of 256 KB (one step) took 1.12–1.19× the time of one projection, blocks of 2–4 MB 0.84–0.95×
 * (interleaved predicts, CPU time, a quiet spell of the shared machine; loaded, the same comparison ranged 0.9–1.15×).
 * (@internal: an object so that the tests can make the blocks a few steps long.)
 */
export const inferBlock = { bytes: 2097152 };

/**
 * Steps per block of a forward-only pass over n steps of B rows, G gate columns of `bytes` bytes each: as many as fit
 * inferBlock.bytes, and at least enough for four rows (so that a block's projection takes the same kernel, by shape,
 * as the whole range's would: the same sums in the same order), at most n.
 */
export function inferSteps(B: number, G: number, bytes: number, n: number): number {
  return Math.min(n, Math.max(Math.ceil(4 / B), Math.floor(inferBlock.bytes / (B * G * bytes))));
}

/**
 * The end of the block of k steps from b0 in a range ending at t1: b0 + k, or t1 when fewer than four rows (B each)
 * would be left after it, which then join this block (a block of fewer rows takes another product kernel, whose sums
 * can round differently: the TypeScript products' thin one, for instance).
 */
export function blockEnd(b0: number, k: number, t1: number, B: number): number {
  return (t1 - b0 - k) * B < 4 ? t1 : b0 + k;
}

/** A dropout rate option: a number in [0, 1), default 0. */
export function rate(name: string, v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !(v >= 0 && v < 1)) throw new ValueError(`${name}: expected a rate in [0, 1), got ${fmtValue(v)}`);
  return v;
}

/** A boolean option. */
export function bool(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new ValueError(`${name}: expected true or false, got ${fmtValue(v)}`);
  return v;
}
