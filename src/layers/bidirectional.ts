/**
 * The Bidirectional wrapper (Keras 3's `keras.layers.Bidirectional`): one recurrent layer read in both directions,
 * its two outputs merged.
 *
 * Both directions are made from the layer's configuration, as Keras 3 remakes them: the forward one as it is, the
 * backward one with goBackwards true, each with weights of its own, and both with zeroOutputForMask set to
 * returnSequences (Keras 3's Bidirectional forces it so: under a mask a sequence-returning Bidirectional gives zeros at
 * masked steps, and a last-step one each direction's last kept output). Both read the same input under the same mask
 * (the backward one reverses input and mask itself, as every goBackwards layer does). A backwards layer returns its outputs in its reading order, so with
 * returnSequences the backward output is flipped back into time order before the merge (Keras 3 flips `y_rev` on
 * the time axis); without, each direction gives its last output (the backward one's is the state after reading
 * step 0). The merge, per step and row:
 *
 *   concat  y = [y_f, y_b]        (2H features; the default)
 *   sum     y = y_f + y_b
 *   mul     y = y_f ⊙ y_b
 *   ave     y = (y_f + y_b) / 2
 *
 * and its backward splits dL/dy into each direction's dL/dy_f, dL/dy_b (through the product's other factor for
 * mul), each direction runs its own backward, and dL/dx is their sum.
 *
 * States: the forward direction's then the backward's, named h, c (an LSTM's), hBackward, cBackward, each (B, H),
 * as Keras's `return_state` lists them. Dropout: each direction draws its own masks (the engine draws (2B, ·) and
 * the workspace hands each direction its half). Truncated BPTT refuses the layer: the backward direction starts at
 * the end of the sequence, which a window does not have.
 *
 * Legend: B batch, I input features, H units of each direction, U the merged output's features (2H or H), cap the
 * workspace's steps.
 */
import type { DType, FloatArray } from "../tensor/tensor.js";
import { allocate } from "../tensor/tensor.js";
import { ValueError, checkKeys, fmtValue } from "../errors.js";
import type { Rng } from "../init.js";
import type { Flow, GradStream, PassContext, RecurrentLayer, RecurrentWorkspace, Stream, StudyBuffers } from "./layer.js";
import { LSTM, type LSTMWorkspace } from "./lstm.js";
import { GRU, type GRUWorkspace } from "./gru.js";

/** How the two directions' outputs become one (Keras's `merge_mode`). */
export type MergeMode = "concat" | "sum" | "mul" | "ave";
export const MERGE_MODES: readonly MergeMode[] = ["concat", "sum", "mul", "ave"];

export interface BidirectionalOptions {
  /** How the outputs merge: "concat" (default, 2H features), "sum", "mul" or "ave" (H features). */
  mergeMode?: MergeMode;
}

/** The recurrent layers Bidirectional wraps. */
export type Directional = LSTM | GRU;
type DirWorkspace = LSTMWorkspace | GRUWorkspace;

/** Buffers for one (B, capacity) shape: the two directions' workspaces and the merge's own. */
export class BidirectionalWorkspace implements RecurrentWorkspace {
  readonly states: readonly FloatArray[];
  readonly dStates: readonly FloatArray[];
  readonly y: FloatArray;   // (cap, B, U) per step in time order, or (B, U): the merged output
  readonly dF: FloatArray;  // (cap, B, H) or (B, H): dL/dy_f, time order
  readonly dB: FloatArray;  // (cap, B, H) or (B, H): dL/dy_b, the backward direction's reading order
  readonly dx: FloatArray;  // (cap, B, I): dL/dx, both directions' sum
  // Each direction's streams, set by the passes (one object each, no allocation per pass).
  readonly outF: Stream = { buf: new Float64Array(0), off: 0 };
  readonly outB: Stream = { buf: new Float64Array(0), off: 0 };
  readonly gF: GradStream = { buf: new Float64Array(0), off: 0, from: 0 };
  readonly gB: GradStream = { buf: new Float64Array(0), off: 0, from: 0 };
  readonly dxF: GradStream = { buf: new Float64Array(0), off: 0, from: 0 };
  readonly dxB: GradStream = { buf: new Float64Array(0), off: 0, from: 0 };
  /** The gradient study's per-direction buffers (allocated on the first pass that asks). */
  study: [StudyBuffers, StudyBuffers] | null = null;
  norms: [Float64Array, Float64Array] | null = null;
  t0 = 0;
  t1 = 0;
  private xm: Float64Array | null = null;
  private hm: Float64Array | null = null;

  constructor(dtype: DType, public B: number, public cap: number, readonly fw: DirWorkspace, readonly bw: DirWorkspace, H: number, U: number, I: number, perStep: boolean) {
    const rows = perStep ? cap * B : B;
    this.states = [...fw.states, ...bw.states];
    this.dStates = [...fw.dStates, ...bw.dStates];
    this.y = allocate(dtype, rows * U);
    this.dF = allocate(dtype, rows * H);
    this.dB = allocate(dtype, rows * H);
    this.dx = allocate(dtype, cap * B * I);
  }

  /** Dropout's x masks, (2B, I): the forward direction's rows then the backward's; each direction sees its half. */
  get xMask(): Float64Array | null { return this.xm; }
  set xMask(m: Float64Array | null) {
    if (m === this.xm) return;
    this.xm = m;
    const n = m ? m.length / 2 : 0;
    this.fw.xMask = m ? m.subarray(0, n) : null;
    this.bw.xMask = m ? m.subarray(n) : null;
  }

  /** Recurrent dropout's h masks, (2B, H), likewise. */
  get hMask(): Float64Array | null { return this.hm; }
  set hMask(m: Float64Array | null) {
    if (m === this.hm) return;
    this.hm = m;
    const n = m ? m.length / 2 : 0;
    this.fw.hMask = m ? m.subarray(0, n) : null;
    this.bw.hMask = m ? m.subarray(n) : null;
  }

  get dropping(): boolean { return this.fw.dropping; }
  set dropping(on: boolean) {
    this.fw.dropping = on;
    this.bw.dropping = on;
  }
}

/**
 * A recurrent layer read in both directions, outputs merged (Keras 3's Bidirectional).
 *
 * @example
 * const model = new Sequential([
 *   new Embedding({ inputDim: 10000, outputDim: 64, maskZero: true }),
 *   new Bidirectional(new LSTM({ units: 32 })),
 *   new Dense({ units: 1, activation: "sigmoid" }),
 * ]);
 */
export class Bidirectional implements RecurrentLayer<BidirectionalWorkspace> {
  readonly kind = "bidirectional" as const;
  readonly recurrent = true as const;
  readonly stateNames: readonly string[];
  readonly mergeMode: MergeMode;
  /** The forward direction: the layer given, remade (zeroOutputForMask = returnSequences). */
  readonly forwardLayer: Directional;
  /** The backward direction: the same configuration reading backwards (goBackwards true). */
  readonly backwardLayer: Directional;
  readonly units: number;
  readonly stateUnits: number;
  readonly directions = 2 as const;
  owner: object | null = null;

  constructor(layer: Directional, options: BidirectionalOptions = {}) {
    if (!(layer instanceof LSTM) && !(layer instanceof GRU)) {
      throw new ValueError(`Bidirectional layer: expected an LSTM or a GRU, got ${fmtValue(layer)}`);
    }
    if (layer.owner !== null) {
      throw new ValueError(`Bidirectional layer: this ${layer.kind} layer already belongs to a model or another Bidirectional; create a new one`);
    }
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`Bidirectional options: expected an object like { mergeMode: "concat" }, got ${fmtValue(options)}`);
    }
    checkKeys("Bidirectional", options, ["mergeMode"]);
    const mode = options.mergeMode === undefined ? "concat" : options.mergeMode; // null is Keras's None, refused below
    if (!MERGE_MODES.includes(mode)) {
      throw new ValueError(
        `Bidirectional mergeMode: expected one of ${MERGE_MODES.map((m) => `"${m}"`).join(", ")}, got ${fmtValue(mode)}` +
        (mode === null ? " (Keras's None, the two outputs as a list, has no place in a Sequential)" : ""),
      );
    }
    if (layer.goBackwards) {
      throw new ValueError(
        `Bidirectional layer: this ${layer.kind === "lstm" ? "LSTM" : "GRU"} has goBackwards: true; the Bidirectional reads backwards with a copy of ` +
        "it, so give it the forward layer (Keras 3 refuses two layers reading the same way)",
      );
    }
    if (layer.zeroOutputForMask && !layer.returnSequences) {
      throw new ValueError(
        "Bidirectional layer: zeroOutputForMask: true without returnSequences; a Bidirectional sets zeroOutputForMask to returnSequences " +
        "on both directions (as Keras 3 does), so leave it out",
      );
    }
    this.mergeMode = mode;
    this.forwardLayer = copyOf(layer, false);
    this.backwardLayer = copyOf(layer, true);
    layer.owner = this; // the template; its copies are the directions
    this.forwardLayer.owner = this;
    this.backwardLayer.owner = this;
    const H = layer.units;
    this.stateUnits = H;
    this.units = mode === "concat" ? 2 * H : H;
    this.stateNames = [...layer.stateNames, ...layer.stateNames.map((n) => `${n}Backward`)];
  }

  get inputDim(): number | undefined { return this.forwardLayer.inputDim; }
  set inputDim(d: number | undefined) {
    this.forwardLayer.inputDim = d;
    this.backwardLayer.inputDim = d;
  }

  get returnSequences(): boolean { return this.forwardLayer.returnSequences; }
  get stateful(): boolean { return this.forwardLayer.stateful; }
  get batchSize(): number | undefined { return this.forwardLayer.batchSize; }
  set batchSize(b: number | undefined) {
    this.forwardLayer.batchSize = b;
    this.backwardLayer.batchSize = b;
  }
  get dropout(): number { return this.forwardLayer.dropout; }
  get recurrentDropout(): number { return this.forwardLayer.recurrentDropout; }
  /** False: the forward direction reads forwards (the backward one is the one that reads backwards). */
  get goBackwards(): boolean { return false; }

  flowFor(input: Flow): Flow | string {
    if (input !== "sequence") {
      return "a Bidirectional reads a sequence [batch, timesteps, features], and the layer below gives one vector per row " +
        "(a recurrent layer below it needs returnSequences: true)";
    }
    return this.returnSequences ? "sequence" : "vector";
  }

  paramCount(inputDim = this.inputDim!): number {
    return this.forwardLayer.paramCount(inputDim) + this.backwardLayer.paramCount(inputDim);
  }

  /** Shapes in getWeights order: the forward direction's, then the backward's. */
  weightShapes(inputDim = this.inputDim!): number[][] {
    return [...this.forwardLayer.weightShapes(inputDim), ...this.backwardLayer.weightShapes(inputDim)];
  }

  /** "forward/kernel", …, "backward/bias". */
  weightNames(): string[] {
    return [...this.forwardLayer.weightNames().map((n) => `forward/${n}`), ...this.backwardLayer.weightNames().map((n) => `backward/${n}`)];
  }

  bind(params: FloatArray, grads: FloatArray, off: number): number {
    return this.backwardLayer.bind(params, grads, this.forwardLayer.bind(params, grads, off));
  }

  /** Each direction as its own layer initialises (Keras's), the forward one first. */
  initialize(rng: Rng): void {
    this.forwardLayer.initialize(rng);
    this.backwardLayer.initialize(rng);
  }

  workspace(dtype: DType, B: number, cap: number, input: Flow, masked: boolean, current: BidirectionalWorkspace | null): BidirectionalWorkspace {
    const fw = workspaceOf(this.forwardLayer, dtype, B, cap, input, masked, current?.fw ?? null);
    const bw = workspaceOf(this.backwardLayer, dtype, B, cap, input, masked, current?.bw ?? null);
    cap = Math.min(fw.cap, bw.cap);
    // The merge's own buffers are reused while they hold (cap, B) (or (B) rows for a last-step output): B can change
    // with the directions' workspaces kept (they are reused by their total size), so the count is rows, not steps.
    const rows = this.returnSequences ? cap * B : B;
    if (current && current.fw === fw && current.bw === bw && current.y.length >= rows * this.units &&
      current.dF.length >= rows * this.stateUnits && current.dx.length >= cap * B * this.inputDim!) {
      current.B = B;
      current.cap = cap;
      return current;
    }
    const ws = new BidirectionalWorkspace(dtype, B, cap, fw, bw, this.stateUnits, this.units, this.inputDim!, this.returnSequences);
    return ws;
  }

  forward(ws: BidirectionalWorkspace, x: Stream, t0: number, t1: number, pass: PassContext, out: Stream): void {
    ws.t0 = t0;
    ws.t1 = t1;
    fwdOf(this.forwardLayer, ws.fw, x, t0, t1, pass, ws.outF);
    fwdOf(this.backwardLayer, ws.bw, x, t0, t1, pass, ws.outB);
    const B = ws.B, H = this.stateUnits, U = this.units, BH = B * H, y = ws.y, mode = this.mergeMode;
    const f = ws.outF, r = ws.outB;
    if (this.returnSequences) {
      // Step t: the forward output at step t, the backward one at its reading step t0 + t1 − 1 − t.
      for (let t = t0; t < t1; t++) merge(mode, B, H, f.buf, f.off + t * BH, r.buf, r.off + (t0 + t1 - 1 - t) * BH, y, t * B * U);
      out.off = 0;
    } else {
      merge(mode, B, H, f.buf, f.off, r.buf, r.off, y, 0);
      out.off = 0;
    }
    out.buf = y;
  }

  backward(ws: BidirectionalWorkspace, x: Stream, tb: number, t1: number, dOut: GradStream, pass: PassContext, dx: GradStream): void {
    const B = ws.B, H = this.stateUnits, U = this.units, BH = B * H, BU = B * U, mode = this.mergeMode;
    const seq = this.returnSequences, t0 = ws.t0, f = ws.outF, r = ws.outB;
    // dL/dy into each direction's gradient; steps without one from above (before dOut.from) get zeros.
    if (seq) {
      for (let t = tb; t < t1; t++) {
        const s = t0 + t1 - 1 - t; // the backward direction's reading step
        if (t < dOut.from) {
          ws.dF.fill(0, t * BH, (t + 1) * BH);
          ws.dB.fill(0, s * BH, (s + 1) * BH);
          continue;
        }
        split(mode, B, H, dOut.buf, dOut.off + (t - dOut.from) * BU, f.buf, f.off + t * BH, r.buf, r.off + s * BH, ws.dF, t * BH, ws.dB, s * BH);
      }
      setGrad(ws.gF, ws.dF, tb * BH, tb);
      setGrad(ws.gB, ws.dB, tb * BH, tb);
    } else {
      split(mode, B, H, dOut.buf, dOut.off, f.buf, f.off, r.buf, r.off, ws.dF, 0, ws.dB, 0);
      setGrad(ws.gF, ws.dF, 0, 0);
      setGrad(ws.gB, ws.dB, 0, 0);
    }
    // The study's buffers, per direction; the layer's own (time order, [forward, backward] features) after.
    const study = pass.study, norms = pass.dhNorms;
    if (study) ws.study = studyBuffers(ws, H, study.dc !== null);
    if (norms) ws.norms = ws.norms && ws.norms[0].length >= ws.cap ? ws.norms : [new Float64Array(ws.cap), new Float64Array(ws.cap)];
    pass.study = study ? ws.study![0] : null;
    pass.dhNorms = norms ? ws.norms![0] : null;
    bwdOf(this.forwardLayer, ws.fw, x, tb, t1, ws.gF, pass, ws.dxF);
    pass.study = study ? ws.study![1] : null;
    pass.dhNorms = norms ? ws.norms![1] : null;
    bwdOf(this.backwardLayer, ws.bw, x, tb, t1, ws.gB, pass, ws.dxB);
    pass.study = study;
    pass.dhNorms = norms;
    if (study) studyInTimeOrder(ws, study, B, H, tb, t1);
    if (norms) {
      // ‖(dL/dh_f, dL/dh_b)‖ at each time step: the backward direction's at its reading step t0 + t1 − 1 − t.
      for (let t = tb; t < t1; t++) {
        const a = ws.norms![0][t]!, b = ws.norms![1][t0 + t1 - 1 - t]!;
        norms[t] = Math.sqrt(a * a + b * b);
      }
    }
    dx.buf = ws.dx;
    dx.off = tb * B * this.inputDim!;
    dx.from = tb;
    if (!pass.needDx) return;
    // dL/dx = the forward direction's + the backward direction's, both in the input's order (step t at t·B·I).
    const n = B * this.inputDim!, a = ws.dxF, b = ws.dxB, d = ws.dx;
    for (let t = tb; t < t1; t++) {
      const oa = a.off + (t - a.from) * n, ob = b.off + (t - b.from) * n, o = t * n;
      for (let k = 0; k < n; k++) d[o + k] = a.buf[oa + k]! + b.buf[ob + k]!;
    }
  }

  shiftHistory(): void {
    // Truncated BPTT refuses a Bidirectional model (the backward direction needs the end of the sequence first).
    throw new Error("Bidirectional.shiftHistory: a Bidirectional layer keeps no history between windows");
  }
}

/** One direction made from an LSTM's or GRU's configuration (fresh weights, no owner), as Keras 3's Bidirectional remakes it. */
function copyOf(l: Directional, goBackwards: boolean): Directional {
  const common = {
    units: l.units, inputDim: l.inputDim, returnSequences: l.returnSequences, stateful: l.stateful, batchSize: l.batchSize,
    kernelInitializer: l.kernelInitializer, recurrentInitializer: l.recurrentInitializer, recurrentActivation: l.recurrentActivation,
    useBias: l.useBias, dropout: l.dropout, recurrentDropout: l.recurrentDropout, goBackwards,
    zeroOutputForMask: l.returnSequences,
  };
  return l instanceof LSTM ? new LSTM({ ...common, unitForgetBias: l.unitForgetBias }) : new GRU({ ...common, resetAfter: l.resetAfter });
}

// The directions as the protocol's layers (one signature for both cells).
function workspaceOf(l: Directional, dtype: DType, B: number, cap: number, input: Flow, masked: boolean, cur: DirWorkspace | null): DirWorkspace {
  return l instanceof LSTM ? l.workspace(dtype, B, cap, input, masked, cur as LSTMWorkspace | null) : l.workspace(dtype, B, cap, input, masked, cur as GRUWorkspace | null);
}
function fwdOf(l: Directional, ws: DirWorkspace, x: Stream, t0: number, t1: number, pass: PassContext, out: Stream): void {
  if (l instanceof LSTM) l.forward(ws as LSTMWorkspace, x, t0, t1, pass, out);
  else l.forward(ws as GRUWorkspace, x, t0, t1, pass, out);
}
function bwdOf(l: Directional, ws: DirWorkspace, x: Stream, tb: number, t1: number, d: GradStream, pass: PassContext, dx: GradStream): void {
  if (l instanceof LSTM) l.backward(ws as LSTMWorkspace, x, tb, t1, d, pass, dx);
  else l.backward(ws as GRUWorkspace, x, tb, t1, d, pass, dx);
}

function setGrad(g: GradStream, buf: FloatArray, off: number, from: number): void {
  g.buf = buf;
  g.off = off;
  g.from = from;
}

/** One step's (B, H) rows of each direction merged into (B, U) rows of y. */
function merge(mode: MergeMode, B: number, H: number, f: FloatArray, fo: number, r: FloatArray, ro: number, y: FloatArray, yo: number): void {
  if (mode === "concat") {
    for (let b = 0; b < B; b++) {
      const o = yo + b * 2 * H, a = fo + b * H, c = ro + b * H;
      for (let j = 0; j < H; j++) { y[o + j] = f[a + j]!; y[o + H + j] = r[c + j]!; }
    }
    return;
  }
  const n = B * H;
  if (mode === "sum") for (let k = 0; k < n; k++) y[yo + k] = f[fo + k]! + r[ro + k]!;
  else if (mode === "mul") for (let k = 0; k < n; k++) y[yo + k] = f[fo + k]! * r[ro + k]!;
  else for (let k = 0; k < n; k++) y[yo + k] = (f[fo + k]! + r[ro + k]!) / 2;
}

/** The backward of `merge` on one step: dL/dy (B, U) rows into dL/dy_f and dL/dy_b (B, H) rows. */
function split(
  mode: MergeMode, B: number, H: number, dy: FloatArray, dyo: number,
  f: FloatArray, fo: number, r: FloatArray, ro: number, // the outputs merged (mul's other factors)
  df: FloatArray, dfo: number, db: FloatArray, dbo: number,
): void {
  if (mode === "concat") {
    for (let b = 0; b < B; b++) {
      const o = dyo + b * 2 * H, a = dfo + b * H, c = dbo + b * H;
      for (let j = 0; j < H; j++) { df[a + j] = dy[o + j]!; db[c + j] = dy[o + H + j]!; }
    }
    return;
  }
  const n = B * H;
  if (mode === "sum") for (let k = 0; k < n; k++) { const g = dy[dyo + k]!; df[dfo + k] = g; db[dbo + k] = g; }
  else if (mode === "mul") for (let k = 0; k < n; k++) { const g = dy[dyo + k]!; df[dfo + k] = g * r[ro + k]!; db[dbo + k] = g * f[fo + k]!; }
  else for (let k = 0; k < n; k++) { const g = dy[dyo + k]! / 2; df[dfo + k] = g; db[dbo + k] = g; }
}

/** Per-direction study buffers for the workspace's shape, (cap, B, H) each (kept while they fit). */
function studyBuffers(ws: BidirectionalWorkspace, H: number, withC: boolean): [StudyBuffers, StudyBuffers] {
  const n = ws.cap * ws.B * H;
  const fits = (s: StudyBuffers): boolean => s.dh.length >= n && (s.dc !== null) === withC && (!s.dc || s.dc.length >= n);
  if (ws.study && fits(ws.study[0])) return ws.study;
  const mk = (): StudyBuffers => ({ dh: new Float64Array(n), dc: withC ? new Float64Array(n) : null });
  return [mk(), mk()];
}

/**
 * The layer's study output from its directions': step t's (B, 2H) rows of dL/dh (and dL/dc) are the forward
 * direction's at step t and the backward direction's at its reading step t0 + t1 − 1 − t (time order).
 */
function studyInTimeOrder(ws: BidirectionalWorkspace, out: StudyBuffers, B: number, H: number, tb: number, t1: number): void {
  const [f, r] = ws.study!, t0 = ws.t0, BH = B * H;
  for (let t = tb; t < t1; t++) {
    const s = t0 + t1 - 1 - t;
    for (let b = 0; b < B; b++) {
      const o = (t * B + b) * 2 * H, a = t * BH + b * H, c = s * BH + b * H;
      for (let j = 0; j < H; j++) {
        out.dh[o + j] = f.dh[a + j]!; out.dh[o + H + j] = r.dh[c + j]!;
        if (out.dc) { out.dc[o + j] = f.dc![a + j]!; out.dc[o + H + j] = r.dc![c + j]!; }
      }
    }
  }
}
