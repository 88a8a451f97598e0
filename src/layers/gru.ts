/**
 * The GRU layer: Keras 3's layout and gate order (z, r, h: update, reset, candidate), forward and backward by hand.
 *
 * Legend: B batch, T timesteps of the window, I input features, H units, G = 3H. Sequences are time-major (see
 * lstm.ts). Per step, with σ the recurrent activation and h the previous state:
 *
 *   x_z, x_r, x_h = x·W + b_x                 (one product for every step of the range: (n·B, I)·(I, 3H))
 *   resetAfter (default; PyTorch's and cuDNN's form, two bias rows b_x, b_h):
 *     h_z, h_r, h_h = h·U + b_h               (B, H)·(H, 3H)
 *     z = σ(x_z + h_z), r = σ(x_r + h_r), ĥ = tanh(x_h + r ⊙ h_h)
 *   resetAfter false (Cho et al.'s first form, one bias):
 *     h_z, h_r = h·U_zr; z, r as above; ĥ = tanh(x_h + (r ⊙ h)·U_h)
 *   h' = z ⊙ h + (1 − z) ⊙ ĥ
 *
 * Recurrent dropout multiplies h by its mask in the recurrent products only (the mix z ⊙ h keeps the state itself),
 * as Keras 3's GRUCell with implementation 1 does (its default implementation 2 skips recurrent dropout), with one
 * mask shared by the three gates, as the LSTM's.
 */
import type { FloatArray, DType } from "../tensor/tensor.js";
import { allocate } from "../tensor/tensor.js";
import {
  HOLD_NEW, HOLD_SAME, matmulNN, matmulNT, matmulTN, addBiasRows, sumRowsInto, fastSigmoid, fastTanh, gemmPlan, gruGatesForward, gruGatesPlan,
  gruGatesBackward, gruGatesBackPlan, hardSigmoid, hardSigmoidGrad,
} from "../tensor/kernels.js";
import { initialize, type InitializerName, type Rng } from "../init.js";
import type { Flow, GradStream, PassContext, RecurrentLayer, Stream } from "./layer.js";
import {
  type RecurrentActivation, type SequenceBuffers, blockEnd, bool, dropInputGrads, dropInputs, inferSteps, recurrentOptions, sequenceBackward,
  sequenceExtras, sequenceForward, shiftSequenceBuffers,
} from "./recurrent.js";

export interface GRUOptions {
  /** Number of units H. */
  units: number;
  /** Input features I; needed on the first layer unless the model is built from data. */
  inputDim?: number;
  /** Return h for every step ([B, T, H]) instead of the last step only ([B, H]). Default false. */
  returnSequences?: boolean;
  /** Carry h from one call to the next, row by row (Keras `stateful`). Default false. */
  stateful?: boolean;
  /** The fixed batch size of a stateful layer; when omitted it is fixed by the first batch seen. */
  batchSize?: number;
  /**
   * Apply the reset gate after the recurrent product (Keras 3's default and PyTorch's `nn.GRU`: two bias rows, input
   * and recurrent) or, with false, to h before it (one bias; what TensorFlow.js's GRU computes). Default true.
   */
  resetAfter?: boolean;
  kernelInitializer?: InitializerName;
  recurrentInitializer?: InitializerName;
  /** σ on the update and reset gates: "sigmoid" (default, Keras 3 and PyTorch) or "hardSigmoid" (TensorFlow.js's default). */
  recurrentActivation?: RecurrentActivation;
  /** Add biases to the gates. Default true. */
  useBias?: boolean;
  /** Keras's `dropout`: the input x_t times a 0/1 mask scaled by 1/(1 − p), one mask per row per batch, shared by the gates. */
  dropout?: number;
  /** Keras's `recurrent_dropout`: the same on h_{t−1} in the recurrent products. Default 0. */
  recurrentDropout?: number;
  /** Keras's `go_backwards` (see LSTMOptions.goBackwards). Default false. */
  goBackwards?: boolean;
  /** Keras's `zero_output_for_mask` (see LSTMOptions.zeroOutputForMask). Default false. */
  zeroOutputForMask?: boolean;
}

const GRU_OPTIONS = [
  "units", "inputDim", "returnSequences", "stateful", "batchSize", "resetAfter", "kernelInitializer", "recurrentInitializer",
  "recurrentActivation", "useBias", "dropout", "recurrentDropout", "goBackwards", "zeroOutputForMask",
] as const;

/** Buffers for one (B, capacity) shape, allocated once and reused. */
export class GRUWorkspace implements SequenceBuffers {
  readonly hs: FloatArray;    // (cap + 1, B, H): slot 0 is the initial state, slot t + 1 is h_t
  readonly gx: FloatArray;    // (cap, B, G): x·W + b_x, then (in place) the activations z, r, ĥ
  readonly gu: FloatArray;    // (cap, B, G): the recurrent products: h·U + b_h (resetAfter), or h·U_zr and (r ⊙ h)·U_h
  readonly dX: FloatArray;    // (cap, B, G): dL/d(x_z + h_z), dL/d(x_r + h_r), dL/d(x_h): the x side's pre-activations
  readonly dU: FloatArray | null; // (cap, B, G), resetAfter: dL/dh_z, dL/dh_r, dL/dh_h (= dX's h part ⊙ r); else null
  readonly rh: FloatArray | null; // (cap, B, H), resetAfter false: r ⊙ h_{t−1} (through the recurrent mask), U_h's input
  readonly dxs: FloatArray;   // (cap, B, I): dL/dx
  readonly dh: FloatArray;    // (B, H): the gradient reaching h_{t−1}; dL/dh0 at the end
  readonly dq: FloatArray;    // (B, H) scratch: dL/d(the recurrent product's input), before the recurrent mask
  readonly states: readonly FloatArray[];
  readonly dStates: readonly FloatArray[];
  xd: FloatArray | null = null;
  hd: FloatArray | null = null;
  xMask: Float64Array | null = null;
  hMask: Float64Array | null = null;
  dropping = false;
  keepH: FloatArray | null = null; // (B, H): masking's pass-through gradient
  out: FloatArray | null = null;
  zeroed: Uint8Array | null = null;
  seen: Uint8Array | null = null;
  xr: FloatArray | null = null;
  vr: Uint8Array | null = null;
  dxt: FloatArray | null = null;
  t0 = 0;
  t1 = 0;
  constructor(dtype: DType, public B: number, public cap: number, private readonly H: number, private readonly I: number, resetAfter: boolean) {
    const G = 3 * H;
    this.hs = allocate(dtype, (cap + 1) * B * H);
    this.gx = allocate(dtype, cap * B * G);
    this.gu = allocate(dtype, cap * B * G);
    this.dX = allocate(dtype, cap * B * G);
    this.dU = resetAfter ? allocate(dtype, cap * B * G) : null;
    this.rh = resetAfter ? null : allocate(dtype, cap * B * H);
    this.dxs = allocate(dtype, cap * B * I);
    this.dh = allocate(dtype, B * H);
    this.dq = allocate(dtype, B * H);
    this.states = [this.hs];
    this.dStates = [this.dh];
  }

  /** The most steps these buffers hold for B rows. */
  stepsFor(B: number): number {
    const H = this.H, G = 3 * H;
    if (this.dh.length < B * H) return 0;
    return Math.min(Math.floor(this.hs.length / (B * H)) - 1, Math.floor(this.gx.length / (B * G)), Math.floor(this.dxs.length / (B * this.I)));
  }
}

/**
 * A gated recurrent unit layer (Cho et al. 2014), Keras 3's.
 *
 * @example
 * const model = new Sequential([new GRU({ units: 16, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })]);
 */
export class GRU implements RecurrentLayer<GRUWorkspace> {
  readonly kind = "gru" as const;
  readonly recurrent = true as const;
  readonly stateNames: readonly string[] = ["h"];
  readonly directions = 1 as const;
  /** Features of each state: H. */
  get stateUnits(): number { return this.units; }
  readonly units: number;
  inputDim: number | undefined;
  readonly returnSequences: boolean;
  readonly stateful: boolean;
  batchSize: number | undefined;
  readonly resetAfter: boolean;
  readonly kernelInitializer: InitializerName;
  readonly recurrentInitializer: InitializerName;
  readonly recurrentActivation: RecurrentActivation;
  readonly useBias: boolean;
  readonly dropout: number;
  readonly recurrentDropout: number;
  readonly goBackwards: boolean;
  readonly zeroOutputForMask: boolean;

  // Views into the model's flat parameter and gradient buffers.
  kernel!: FloatArray;           // (I, G)
  recurrentKernel!: FloatArray;  // (H, G)
  bias: FloatArray | null = null;  // resetAfter: (2, G), rows b_x and b_h; else (G); null without useBias
  dKernel!: FloatArray;
  dRecurrentKernel!: FloatArray;
  dBias: FloatArray | null = null;
  owner: object | null = null;

  constructor(options: GRUOptions) {
    const o = recurrentOptions("GRU", options, GRU_OPTIONS);
    this.units = o.units; this.inputDim = o.inputDim; this.returnSequences = o.returnSequences;
    this.stateful = o.stateful; this.batchSize = o.batchSize;
    this.kernelInitializer = o.kernelInitializer; this.recurrentInitializer = o.recurrentInitializer;
    this.recurrentActivation = o.recurrentActivation; this.useBias = o.useBias;
    this.dropout = o.dropout; this.recurrentDropout = o.recurrentDropout;
    this.goBackwards = o.goBackwards; this.zeroOutputForMask = o.zeroOutputForMask;
    this.resetAfter = bool("GRU resetAfter", options.resetAfter, true);
  }

  /** Number of parameters: I·3H + H·3H (+ 6H with resetAfter's two biases, or 3H). */
  paramCount(inputDim = this.inputDim!): number {
    return this.weightShapes(inputDim).reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  }

  /** Shapes in getWeights order (Keras's): kernel (I, 3H), recurrentKernel (H, 3H), bias (2, 3H) or (3H). */
  weightShapes(inputDim = this.inputDim!): number[][] {
    const H = this.units, G = 3 * H;
    if (!this.useBias) return [[inputDim, G], [H, G]];
    return [[inputDim, G], [H, G], this.resetAfter ? [2, G] : [G]];
  }

  weightNames(): string[] {
    return this.useBias ? ["kernel", "recurrentKernel", "bias"] : ["kernel", "recurrentKernel"];
  }

  bind(params: FloatArray, grads: FloatArray, off: number): number {
    const I = this.inputDim!, H = this.units, G = 3 * H;
    const nb = this.useBias ? (this.resetAfter ? 2 * G : G) : 0;
    this.kernel = params.subarray(off, off + I * G);
    this.dKernel = grads.subarray(off, off + I * G);
    off += I * G;
    this.recurrentKernel = params.subarray(off, off + H * G);
    this.dRecurrentKernel = grads.subarray(off, off + H * G);
    off += H * G;
    this.bias = nb ? params.subarray(off, off + nb) : null;
    this.dBias = nb ? grads.subarray(off, off + nb) : null;
    return off + nb;
  }

  /** Keras's defaults: glorotUniform kernel, orthogonal recurrent kernel, zero biases. */
  initialize(rng: Rng): void {
    const I = this.inputDim!, H = this.units, G = 3 * H;
    initialize(this.kernelInitializer, this.kernel, 0, I, G, rng);
    initialize(this.recurrentInitializer, this.recurrentKernel, 0, H, G, rng);
    this.bias?.fill(0);
  }

  flowFor(input: Flow): Flow | string {
    if (input !== "sequence") {
      return "a GRU reads a sequence [batch, timesteps, features], and the layer below gives one vector per row " +
        "(a recurrent layer below it needs returnSequences: true)";
    }
    return this.returnSequences ? "sequence" : "vector";
  }

  workspace(dtype: DType, B: number, cap: number, _input: Flow, masked: boolean, current: GRUWorkspace | null): GRUWorkspace {
    let ws: GRUWorkspace;
    if (current && current.stepsFor(B) >= cap) {
      ws = current;
      ws.cap = ws.stepsFor(B);
      ws.B = B;
    } else ws = new GRUWorkspace(dtype, B, cap, this.units, this.inputDim!, this.resetAfter);
    sequenceExtras(this, ws, dtype, B, masked);
    return ws;
  }

  forward(ws: GRUWorkspace, x: Stream, t0: number, t1: number, pass: PassContext, out: Stream): void {
    sequenceForward(this, ws, x, t0, t1, pass, out);
  }

  backward(ws: GRUWorkspace, x: Stream, tb: number, t1: number, dOut: GradStream, pass: PassContext, dx: GradStream): void {
    sequenceBackward(this, ws, x, tb, t1, dOut, pass, dx);
  }

  shiftHistory(ws: GRUWorkspace, drop: number, keep: number): void {
    const BH = ws.B * this.units, BG = 3 * BH;
    shiftSequenceBuffers(this, ws, drop, keep); // h, dropout's copies, the masked output
    ws.gx.copyWithin(0, drop * BG, (drop + keep) * BG);
    ws.gu.copyWithin(0, drop * BG, (drop + keep) * BG);
    ws.rh?.copyWithin(0, drop * BH, (drop + keep) * BH);
  }

  /**
   * Forward over steps [t0, t1) in reading order; slot t0 of hs holds the initial state. A training pass keeps every
   * step's gx, gu (and rh) at its step, for backward; a forward-only one (`infer`) runs blocks of steps (inferSteps)
   * at the front of those buffers, which stay in cache: the same kernels on the same values, so the same bits.
   */
  runForward(ws: GRUWorkspace, xs: FloatArray, xOff: number, t0: number, t1: number, valid: Uint8Array | null, infer: boolean): void {
    const B = ws.B, H = this.units, G = 3 * H, I = this.inputDim!, BH = B * H, n = t1 - t0;
    if (n <= 0) return;
    const { hs, gx, gu } = ws, U = this.recurrentKernel, bias = this.bias;
    const xm = ws.dropping ? ws.xMask : null, hm = ws.dropping ? ws.hMask : null;
    const hard = this.recurrentActivation === "hardSigmoid", after = this.resetAfter;
    let src = xs, srcOff = xOff;
    if (xm) {
      dropInputs(B, I, xs, xOff, t0, t1, xm, ws.xd!);
      src = ws.xd!; srcOff = 0;
    }
    const uPlan = after ? gemmPlan(B, G, hm ? ws.hd! : hs, U, gu) : null;
    const gPlan = after ? gruGatesPlan(H, hard, gx, gu, hs) : null;
    // Steps per block: all of them for a training pass, a few for a forward-only one (at the buffers' front).
    const k = infer ? inferSteps(B, G, gx.BYTES_PER_ELEMENT, n) : n;
    for (let b0 = t0, b1 = t0; b0 < t1; b0 = b1) {
      b1 = blockEnd(b0, k, t1, B);
      const base = infer ? b0 : 0; // step t's gate rows at (t − base)·B·G
      // The input side for every step of the block at once: (m·B, I)·(I, G) + b_x.
      matmulNN((b1 - b0) * B, G, I, src, srcOff + b0 * B * I, I, this.kernel, 0, G, gx, (b0 - base) * B * G, G, false);
      if (bias) addBiasRows((b1 - b0) * B, G, gx, (b0 - base) * B * G, G, bias, 0);
      for (let t = b0; t < b1; t++) {
        const zo = (t - base) * B * G, ho = t * BH; // step t's gate rows; h_{t−1} at slot t
        let hsrc = hs;
        if (hm) {
          const hd = ws.hd!;
          for (let q = 0; q < BH; q++) hd[ho + q] = hs[ho + q]! * hm[q]!;
          hsrc = hd;
        }
        if (after) {
          // h_z, h_r, h_h = h·U + b_h: (B, H)·(H, G). U does not change within the loop (the SIMD backend packs it once).
          matmulNN(B, G, H, hsrc, ho, H, U, 0, G, gu, zo, G, false, t === t0 ? HOLD_NEW : HOLD_SAME, uPlan);
          if (bias) addBiasRows(B, G, gu, zo, G, bias, G);
          // z, r, ĥ and h_t = z ⊙ h + (1 − z) ⊙ ĥ (the SIMD kernel for σ gates on the SIMD backend)
          gruGatesForward(B, H, gx, zo, gu, zo, hs, ho, ho + BH, hard, gPlan);
        } else {
          // h_z, h_r = h·U_zr: (B, H)·(H, 2H), the first 2H columns of U; then ĥ's product on r ⊙ h.
          const rh = ws.rh!, ro = (t - base) * BH; // r ⊙ h_{t−1} at its step
          matmulNN(B, 2 * H, H, hsrc, ho, H, U, 0, G, gu, zo, G, false);
          for (let b = 0; b < B; b++) {
            const g = zo + b * G, h0 = ho + b * H, r0 = ro + b * H;
            for (let j = 0; j < H; j++) {
              const zp = gx[g + j]! + gu[g + j]!, rp = gx[g + H + j]! + gu[g + H + j]!;
              const r = hard ? hardSigmoid(rp) : fastSigmoid(rp);
              gx[g + j] = hard ? hardSigmoid(zp) : fastSigmoid(zp); gx[g + H + j] = r;
              rh[r0 + j] = r * hsrc[h0 + j]!;
            }
          }
          matmulNN(B, H, H, rh, ro, H, U, 2 * H, G, gu, zo + 2 * H, G, false);
          for (let b = 0; b < B; b++) {
            const g = zo + b * G, h0 = ho + b * H, h1 = h0 + BH;
            for (let j = 0; j < H; j++) {
              const z = gx[g + j]!, c = fastTanh(gx[g + 2 * H + j]! + gu[g + 2 * H + j]!);
              gx[g + 2 * H + j] = c;
              hs[h1 + j] = z * hs[h0 + j]! + (1 - z) * c;
            }
          }
        }
        if (valid) {
          // A masked step passes the state through: h_t = h_{t−1} for that row.
          for (let b = 0; b < B; b++) if (!valid[t * B + b]) hs.copyWithin(ho + BH + b * H, ho + b * H, ho + (b + 1) * H);
        }
      }
    }
  }

  /**
   * Backward over [tb, t1), the mirror of runForward: accumulates into dKernel, dRecurrentKernel, dBias; writes dxs
   * rows [tb, t1) and leaves dL/dh_{tb−1} in ws.dh.
   */
  runBackward(
    ws: GRUWorkspace, xs: FloatArray, xOff: number, tb: number, t1: number,
    dhSeq: GradStream | null, dhLast: GradStream | null, pass: PassContext, valid: Uint8Array | null,
  ): void {
    const B = ws.B, H = this.units, G = 3 * H, I = this.inputDim!, BH = B * H;
    const { hs, gx, gu, dX, dh, dq } = ws, U = this.recurrentKernel, after = this.resetAfter;
    const dU = ws.dU, rh = ws.rh;
    const xm = ws.dropping ? ws.xMask : null, hm = ws.dropping ? ws.hMask : null;
    const hard = this.recurrentActivation === "hardSigmoid";
    if (dhLast) for (let k = 0; k < BH; k++) dh[k] = dhLast.buf[dhLast.off + k]!;
    else dh.fill(0, 0, BH);
    const n = t1 - tb;
    if (n <= 0) return;
    const hsrc = hm ? ws.hd! : hs; // what the recurrent products read
    const study = pass.study, norms = pass.dhNorms;
    const bPlan = after ? gruGatesBackPlan(H, hard, gx, gu, hs, dh, dX, dU!) : null;
    for (let t = t1 - 1; t >= tb; t--) {
      const zo = t * B * G, ho = t * BH;
      if (dhSeq && t >= dhSeq.from) {
        const so = dhSeq.off + (t - dhSeq.from) * BH;
        for (let k = 0; k < BH; k++) dh[k] = dh[k]! + dhSeq.buf[so + k]!;
      }
      if (norms) {
        let s = 0;
        for (let k = 0; k < BH; k++) s += dh[k]! * dh[k]!;
        norms[t] = Math.sqrt(s);
      }
      if (study) for (let k = 0; k < BH; k++) study.dh[ho + k] = dh[k]!;
      let skips = false;
      if (valid) {
        // A masked step was the identity on h: its row's gradient passes straight to step t − 1 (kept aside here).
        for (let b = 0; b < B; b++) {
          if (valid[t * B + b]) continue;
          if (!skips) { skips = true; ws.keepH ??= new Float64Array(BH); }
          for (let j = b * H; j < (b + 1) * H; j++) ws.keepH![j] = dh[j]!;
        }
      }
      if (after) {
        const du = dU!;
        // dX, dU and dh = d ⊙ z (the SIMD kernel for σ gates on the SIMD backend)
        gruGatesBackward(B, H, gx, zo, gu, zo, hs, ho, dh, 0, dX, zo, du, zo, hard, bPlan);
        // dL/d(the product's input) = dU_t · Uᵀ: (B, G)·(H, G)ᵀ, into h_{t−1} through the recurrent mask.
        if (hm) {
          matmulNT(B, H, G, du, zo, G, U, 0, G, dq, 0, H, false, t === t1 - 1 ? HOLD_NEW : HOLD_SAME);
          for (let k = 0; k < BH; k++) dh[k] = dh[k]! + dq[k]! * hm[k]!;
        } else {
          matmulNT(B, H, G, du, zo, G, U, 0, G, dh, 0, H, true, t === t1 - 1 ? HOLD_NEW : HOLD_SAME);
        }
      } else {
        // dĥ's pre-activation first; then d(r ⊙ h) = dĥ_pre · U_hᵀ, which r's gradient needs.
        for (let b = 0; b < B; b++) {
          const g = zo + b * G;
          for (let j = 0; j < H; j++) {
            const z = gx[g + j]!, c = gx[g + 2 * H + j]!;
            dX[g + 2 * H + j] = dh[b * H + j]! * (1 - z) * (1 - c * c);
          }
        }
        matmulNT(B, H, H, dX, zo + 2 * H, G, U, 2 * H, G, dq, 0, H, false);
        for (let b = 0; b < B; b++) {
          const g = zo + b * G, h0 = ho + b * H;
          for (let j = 0; j < H; j++) {
            const k = b * H + j, d = dh[k]!, z = gx[g + j]!, r = gx[g + H + j]!, c = gx[g + 2 * H + j]!;
            dX[g + j] = d * (hs[h0 + j]! - c) * (hard ? hardSigmoidGrad(z) : z * (1 - z));
            dX[g + H + j] = dq[k]! * hsrc[h0 + j]! * (hard ? hardSigmoidGrad(r) : r * (1 - r));
            dq[k] = dq[k]! * r; // d(the product's input) from r ⊙ h
            dh[k] = d * z;
          }
        }
        // + [dz, dr]_pre · U_zrᵀ, the other products' share; then through the recurrent mask.
        matmulNT(B, H, 2 * H, dX, zo, G, U, 0, G, dq, 0, H, true);
        for (let k = 0; k < BH; k++) dh[k] = dh[k]! + (hm ? dq[k]! * hm[k]! : dq[k]!);
      }
      if (skips) {
        for (let b = 0; b < B; b++) {
          if (valid![t * B + b]) continue;
          const r = (t * B + b) * G;
          dX.fill(0, r, r + G);
          dU?.fill(0, r, r + G);
          for (let j = b * H; j < (b + 1) * H; j++) dh[j] = ws.keepH![j]!;
        }
      }
    }
    // The weight gradients over all n·B rows at once.
    const xIn = xm ? ws.xd! : xs, xInOff = xm ? tb * B * I : xOff + tb * B * I;
    matmulTN(I, G, n * B, xIn, xInOff, I, dX, tb * B * G, G, this.dKernel, 0, G, true);
    if (after) {
      matmulTN(H, G, n * B, hsrc, tb * BH, H, dU!, tb * B * G, G, this.dRecurrentKernel, 0, G, true);
    } else {
      matmulTN(H, 2 * H, n * B, hsrc, tb * BH, H, dX, tb * B * G, G, this.dRecurrentKernel, 0, G, true);
      matmulTN(H, H, n * B, rh!, tb * BH, H, dX, tb * B * G + 2 * H, G, this.dRecurrentKernel, 2 * H, G, true);
    }
    if (this.dBias) {
      sumRowsInto(n * B, G, dX, tb * B * G, G, this.dBias, 0);
      if (after) sumRowsInto(n * B, G, dU!, tb * B * G, G, this.dBias, G);
    }
    if (!pass.needDx) return;
    matmulNT(n * B, I, G, dX, tb * B * G, G, this.kernel, 0, G, ws.dxs, tb * B * I, I, false);
    if (xm) dropInputGrads(B, I, ws.dxs, tb, t1, xm);
  }
}
