/**
 * The LSTM layer: Keras layout and gate order (i, f, c, o), forward and backward by hand.
 *
 * Legend: B batch, T timesteps of the window, I input features, H units, G = 4H.
 * Inside the engine sequences are time-major, (T, B, ·): one timestep's rows are one contiguous
 * (B, ·) block, so the per-step recurrent matmul reads and writes contiguous memory, and the input
 * projection (all steps at once), dKernel, dRecurrentKernel and dx are single large matmuls over T·B
 * rows. The model transposes to and from the public batch-major [B, T, F] at its boundary.
 *
 * A workspace has a capacity of steps; forward fills steps [t0, t1) from the state stored at slot t0,
 * backward runs over [tb, t1). The truncated-BPTT unroller uses the offsets to keep history.
 */
import type { FloatArray, DType } from "../tensor/tensor.js";
import { allocate } from "../tensor/tensor.js";
import {
  HOLD_NEW, HOLD_SAME, matmulNN, matmulNT, matmulTN2, addBiasRows, sumRowsInto, lstmGatesForward, lstmGatesBackward, lstmGatesBackwardHard,
  lstmRecurrence, lstmRecurrenceBackward, SMALL_PRODUCT,
  gemmPlan, gatesPlan, gatesBackPlan,
} from "../tensor/kernels.js";
import { initialize, type InitializerName, type Rng } from "../init.js";
import type { Flow, GradStream, PassContext, RecurrentLayer, Stream, StudyBuffers } from "./layer.js";
import {
  type RecurrentActivation, type SequenceBuffers, blockEnd, bool, dropInputGrads, dropInputs, inferSteps, recurrentOptions, sequenceBackward,
  sequenceExtras, sequenceForward, shiftSequenceBuffers,
} from "./recurrent.js";

export interface LSTMOptions {
  /** Number of units H. */
  units: number;
  /** Input features I; needed on the first layer unless the model is built from data. */
  inputDim?: number;
  /** Return h for every step ([B, T, H]) instead of the last step only ([B, H]). Default false. */
  returnSequences?: boolean;
  /** Carry (h, c) from one call to the next, row by row (Keras `stateful`). Default false. */
  stateful?: boolean;
  /** The fixed batch size of a stateful layer; when omitted it is fixed by the first batch seen. */
  batchSize?: number;
  /** Initialise the forget-gate bias to ones (Jozefowicz et al.). Default true, as in Keras. */
  unitForgetBias?: boolean;
  kernelInitializer?: InitializerName;
  recurrentInitializer?: InitializerName;
  /**
   * σ on the input, forget and output gates: "sigmoid" (default, Keras ≥ 2.3 and PyTorch) or "hardSigmoid",
   * clip(0.2·x + 0.5, 0, 1), the default of TensorFlow.js and of Keras 2 (what most tfjs-trained models use).
   */
  recurrentActivation?: RecurrentActivation;
  /** Add a bias to the gates. Default true; false (Keras `use_bias=False`) leaves the bias out of the weights. */
  useBias?: boolean;
  /**
   * Keras's `dropout`: while training, each input x_t is multiplied by a 0/1 mask scaled by 1/(1 − p), one mask
   * per batch row drawn once per batch (the same at every step, shared by the four gates). Default 0.
   */
  dropout?: number;
  /** Keras's `recurrent_dropout`: the same on h_{t−1} in the recurrent product. Default 0. */
  recurrentDropout?: number;
  /**
   * Keras's `go_backwards`: read the sequence from its last step to its first. The output is in that order too
   * (with returnSequences, step k of the output is the h after reading input step T − 1 − k; without, the h after
   * input step 0), and a mask passes on to the layer above as it came (Keras 3: the mask is not reversed).
   * Default false. Not with TruncatedBPTT, which has no future to read first.
   */
  goBackwards?: boolean;
  /**
   * Keras's `zero_output_for_mask`: under a mask, a masked step outputs zeros (instead of the previous output), and
   * without returnSequences the output is zeros when the last step read is masked. Default false.
   */
  zeroOutputForMask?: boolean;
}

const LSTM_OPTIONS = [
  "units", "inputDim", "returnSequences", "stateful", "batchSize", "unitForgetBias", "kernelInitializer",
  "recurrentInitializer", "recurrentActivation", "useBias", "dropout", "recurrentDropout", "goBackwards", "zeroOutputForMask",
] as const;

export { type RecurrentActivation, RECURRENT_ACTIVATIONS } from "./recurrent.js";

/** Buffers for one (B, capacity) shape, allocated once and reused for every window of that shape. */
export class LSTMWorkspace implements SequenceBuffers {
  readonly hs: FloatArray;    // (cap + 1, B, H): slot 0 is h_{-1} = the initial state, slot t+1 is h_t
  readonly cs: FloatArray;    // (cap + 1, B, H): likewise for c
  readonly gates: FloatArray; // (cap, B, G): pre-activations, then (in place) activations i, f, g, o
  readonly tanhC: FloatArray; // (cap, B, H)
  readonly dZ: FloatArray;    // (cap, B, G): dL/dz
  readonly dxs: FloatArray;   // (cap, B, I): dL/dx, handed to the layer below as its dhSeq
  readonly dh: FloatArray;    // (B, H): gradient reaching h_{t-1} through the recurrence; dL/dh0 at the end
  readonly dc: FloatArray;    // (B, H): gradient reaching c_{t-1}; dL/dc0 at the end
  /** The state slots, in stateNames order: [hs, cs]; and their gradients [dh, dc]. */
  readonly states: readonly FloatArray[];
  readonly dStates: readonly FloatArray[];
  // Dropout (allocated only for a layer that has it). The masks are per batch row, scaled: 0 or 1/(1 − p).
  xd: FloatArray | null = null;      // (cap, B, I): x_t ⊙ xMask, what the input projection and dKernel read
  hd: FloatArray | null = null;      // (cap, B, H): h_{t-1} ⊙ hMask at slot t, what the recurrent product reads
  xMask: Float64Array | null = null; // (B, I)
  hMask: Float64Array | null = null; // (B, H)
  /** Whether the masks apply to the pass in progress (a training pass of a layer with dropout). */
  dropping = false;
  // Masking: the gradients a skipped step passes through unchanged, per row (allocated on first use).
  keepH: FloatArray | null = null; // (B, H)
  keepC: FloatArray | null = null; // (B, H)
  // Masking: Keras's masked output, what the layer above and the loss read (allocated only when masked).
  out: FloatArray | null = null;     // (cap, B, H) per step, or (B, H) for the last step only
  zeroed: Uint8Array | null = null;  // (cap, B) or (B): 1 where the output is zeros (before a row's first kept step)
  seen: Uint8Array | null = null;    // (B) scratch: whether a row has had a kept step in this call
  // goBackwards (allocated only for such a layer): the input and its mask in reading order, and dL/dx back in time order.
  xr: FloatArray | null = null;      // (cap, B, I): step t is input step t0 + t1 − 1 − t of the call
  vr: Uint8Array | null = null;      // (cap, B): its mask flags
  dxt: FloatArray | null = null;     // (cap, B, I): dL/dx in the input's order
  /** The steps [t0, t1) of the last forward call (goBackwards reverses within them). */
  t0 = 0;
  t1 = 0;
  constructor(dtype: DType, public B: number, public cap: number, private readonly H: number, private readonly I: number) {
    const G = 4 * H;
    this.hs = allocate(dtype, (cap + 1) * B * H);
    this.cs = allocate(dtype, (cap + 1) * B * H);
    this.gates = allocate(dtype, cap * B * G);
    this.tanhC = allocate(dtype, cap * B * H);
    this.dZ = allocate(dtype, cap * B * G);
    this.dxs = allocate(dtype, cap * B * I);
    this.dh = allocate(dtype, B * H);
    this.dc = allocate(dtype, B * H);
    this.states = [this.hs, this.cs];
    this.dStates = [this.dh, this.dc];
  }

  /** The most steps these buffers hold for B rows (buffers are sized by capacity, so a smaller batch, like
   * fit's last one, reuses them instead of reallocating). */
  stepsFor(B: number): number {
    const H = this.H, G = 4 * H, I = this.I;
    if (this.dh.length < B * H) return 0;
    return Math.min(Math.floor(this.hs.length / (B * H)) - 1, Math.floor(this.gates.length / (B * G)), Math.floor(this.dxs.length / (B * I)));
  }
}

/**
 * A long short-term memory layer.
 *
 * @example
 * const model = new Sequential([new LSTM({ units: 10, inputDim: 1 }), new Dense({ units: 1, activation: "sigmoid" })]);
 */
export class LSTM implements RecurrentLayer<LSTMWorkspace> {
  readonly kind = "lstm" as const;
  readonly recurrent = true as const;
  readonly stateNames: readonly string[] = ["h", "c"];
  readonly directions = 1 as const;
  /** Features of each state: H. */
  get stateUnits(): number { return this.units; }
  readonly units: number;
  inputDim: number | undefined;
  readonly returnSequences: boolean;
  readonly stateful: boolean;
  batchSize: number | undefined;
  readonly unitForgetBias: boolean;
  readonly kernelInitializer: InitializerName;
  readonly recurrentInitializer: InitializerName;
  readonly recurrentActivation: RecurrentActivation;
  readonly useBias: boolean;
  readonly dropout: number;
  readonly recurrentDropout: number;
  readonly goBackwards: boolean;
  readonly zeroOutputForMask: boolean;

  // Views into the model's flat parameter and gradient buffers (bound by the model).
  kernel!: FloatArray;           // (I, G)
  recurrentKernel!: FloatArray;  // (H, G)
  bias: FloatArray | null = null;  // (G), null without useBias
  dKernel!: FloatArray;          // (I, G)
  dRecurrentKernel!: FloatArray; // (H, G)
  /** (I + H, G): dKernel and dRecurrentKernel, which follow each other in the gradients (one product fills both). */
  dWeights!: FloatArray;
  dBias: FloatArray | null = null; // (G)

  /** The model this layer belongs to (a layer's weights live in one model's buffers). */
  owner: object | null = null;

  constructor(options: LSTMOptions) {
    const o = recurrentOptions("LSTM", options, LSTM_OPTIONS);
    this.units = o.units; this.inputDim = o.inputDim; this.returnSequences = o.returnSequences;
    this.stateful = o.stateful; this.batchSize = o.batchSize;
    this.kernelInitializer = o.kernelInitializer; this.recurrentInitializer = o.recurrentInitializer;
    this.recurrentActivation = o.recurrentActivation; this.useBias = o.useBias;
    this.dropout = o.dropout; this.recurrentDropout = o.recurrentDropout;
    this.goBackwards = o.goBackwards; this.zeroOutputForMask = o.zeroOutputForMask;
    this.unitForgetBias = bool("LSTM unitForgetBias", options.unitForgetBias, true);
  }

  /** Number of parameters: I·4H + H·4H (+ 4H with a bias). */
  paramCount(inputDim = this.inputDim!): number {
    return this.weightShapes(inputDim).reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  }

  /** Shapes in getWeights order, for `inputDim` input features (default: the built layer's). */
  weightShapes(inputDim = this.inputDim!): number[][] {
    const H = this.units, G = 4 * H;
    return this.useBias ? [[inputDim, G], [H, G], [G]] : [[inputDim, G], [H, G]];
  }

  weightNames(): string[] {
    return this.useBias ? ["kernel", "recurrentKernel", "bias"] : ["kernel", "recurrentKernel"];
  }

  /** Points the weights and gradients at slices of the model's flat buffers. */
  bind(params: FloatArray, grads: FloatArray, off: number): number {
    const I = this.inputDim!, H = this.units, G = 4 * H;
    const nb = this.useBias ? G : 0;
    this.kernel = params.subarray(off, off + I * G);
    this.dKernel = grads.subarray(off, off + I * G);
    this.dWeights = grads.subarray(off, off + (I + H) * G);
    off += I * G;
    this.recurrentKernel = params.subarray(off, off + H * G);
    this.dRecurrentKernel = grads.subarray(off, off + H * G);
    off += H * G;
    this.bias = nb ? params.subarray(off, off + nb) : null;
    this.dBias = nb ? grads.subarray(off, off + nb) : null;
    return off + nb;
  }

  initialize(rng: Rng): void {
    const I = this.inputDim!, H = this.units, G = 4 * H;
    initialize(this.kernelInitializer, this.kernel, 0, I, G, rng);
    initialize(this.recurrentInitializer, this.recurrentKernel, 0, H, G, rng);
    if (this.bias) {
      this.bias.fill(0);
      if (this.unitForgetBias) this.bias.fill(1, H, 2 * H);
    }
  }

  // The layer protocol (layer.ts): the engine's calls, on the functions below.

  /** A sequence in; a sequence out with returnSequences, else the last step's h. */
  flowFor(input: Flow): Flow | string {
    if (input !== "sequence") {
      return "an LSTM reads a sequence [batch, timesteps, features], and the layer below gives one vector per row " +
        "(an LSTM below it needs returnSequences: true)";
    }
    return this.returnSequences ? "sequence" : "vector";
  }

  workspace(dtype: DType, B: number, cap: number, _input: Flow, masked: boolean, current: LSTMWorkspace | null): LSTMWorkspace {
    return lstmWorkspace(this, dtype, B, cap, current, masked);
  }

  forward(ws: LSTMWorkspace, x: Stream, t0: number, t1: number, pass: PassContext, out: Stream): void {
    sequenceForward(this, ws, x, t0, t1, pass, out);
  }

  backward(ws: LSTMWorkspace, x: Stream, tb: number, t1: number, dOut: GradStream, pass: PassContext, dx: GradStream): void {
    sequenceBackward(this, ws, x, tb, t1, dOut, pass, dx);
  }

  /** The cell's forward in reading order (recurrent.ts's sequenceForward calls it). */
  runForward(ws: LSTMWorkspace, xs: FloatArray, xOff: number, t0: number, t1: number, valid: Uint8Array | null, infer: boolean): void {
    lstmForward(this, ws, xs, xOff, t0, t1, valid, infer);
  }

  /** The cell's backward in reading order (recurrent.ts's sequenceBackward calls it). */
  runBackward(
    ws: LSTMWorkspace, xs: FloatArray, xOff: number, tb: number, t1: number,
    dhSeq: GradStream | null, dhLast: GradStream | null, pass: PassContext, valid: Uint8Array | null,
  ): void {
    if (dhSeq) lstmBackward(this, ws, xs, xOff, tb, t1, dhSeq.buf, dhSeq.off, dhSeq.from, null, 0, null, 0, pass.dhNorms, pass.study, valid, pass.needDx);
    else lstmBackward(this, ws, xs, xOff, tb, t1, null, 0, 0, dhLast!.buf, dhLast!.off, null, 0, pass.dhNorms, pass.study, valid, pass.needDx);
  }

  shiftHistory(ws: LSTMWorkspace, drop: number, keep: number): void {
    const B = ws.B, BH = B * this.units, BG = 4 * BH;
    shiftSequenceBuffers(this, ws, drop, keep); // h, dropout's copies, the masked output
    ws.cs.copyWithin(0, drop * BH, (drop + keep + 1) * BH);
    ws.gates.copyWithin(0, drop * BG, (drop + keep) * BG);
    ws.tanhC.copyWithin(0, drop * BH, (drop + keep) * BH);
  }
}

/** A workspace for B rows and at least `cap` steps of the layer: `current` when it fits, else a new one. */
export function lstmWorkspace(layer: LSTM, dtype: DType, B: number, cap: number, current: LSTMWorkspace | null, masked = false): LSTMWorkspace {
  let ws: LSTMWorkspace;
  if (current && current.stepsFor(B) >= cap) {
    ws = current;
    ws.cap = ws.stepsFor(B);
    ws.B = B;
  } else ws = new LSTMWorkspace(dtype, B, cap, layer.units, layer.inputDim!);
  sequenceExtras(layer, ws, dtype, B, masked); // dropout's copies, goBackwards' and masking's buffers
  return ws;
}

/**
 * Forward over steps [t0, t1) of the workspace. The state (h, c) at slot t0 of `hs`/`cs` must be set;
 * slots t0+1 … t1 receive h_t, c_t. `xs` holds the input rows, time-major: step t at xOff + t·B·I.
 *
 * A training pass keeps every step's gates and tanh(c) at their steps of `gates`/`tanhC`, for backward. A forward-only
 * one (`infer`: predict, evaluate) runs the steps in blocks (inferSteps): a block's projection and gates at the front
 * of those buffers, reused by the next block, so that they stay in cache. The same kernels run on the same values in
 * the same order either way, so h and c are the same bits.
 */
export function lstmForward(
  layer: LSTM, ws: LSTMWorkspace,
  xs: FloatArray, xOff: number, // (cap, B, I)
  t0: number, t1: number,
  valid: Uint8Array | null = null, // (cap, B): 0 where a step is masked (Masking), when the model masks
  infer = false,
): void {
  const B = ws.B, H = layer.units, G = 4 * H, I = layer.inputDim!, BH = B * H, BG = B * G;
  const { hs, cs, gates, tanhC } = ws;
  const n = t1 - t0;
  if (n <= 0) return;
  const xm = ws.dropping ? ws.xMask : null, hm = ws.dropping ? ws.hMask : null;
  let src = xs, srcOff = xOff;
  if (xm) {
    // Dropout on the inputs: x_t ⊙ mask (one mask per row, every step), kept for dKernel in backward.
    dropInputs(B, I, xs, xOff, t0, t1, xm, ws.xd!);
    src = ws.xd!; srcOff = 0;
  }
  const hard = layer.recurrentActivation === "hardSigmoid";
  // A batch of fewer than four rows on the SIMD backend: the loop below in one call, the same kernels inside, and
  // the input projection in it too when it is small (see SMALL_PRODUCT).
  const steps = !hm && !valid && !hard, small = n * B * G * I <= SMALL_PRODUCT;
  const R = layer.recurrentKernel;
  if (steps && small && lstmRecurrence(B, H, I, src, srcOff + t0 * B * I, layer.kernel, layer.bias, hs, cs, gates, tanhC, R, t0, t1, true)) return;
  // Steps per block: all of them for a training pass (step t's gates at t·B·G, kept), a few for a forward-only one
  // (step t's at (t − b0)·B·G, b0 the block's first step).
  const k = infer ? inferSteps(B, G, gates.BYTES_PER_ELEMENT, n) : n;
  // The SIMD kernels and their arrays' offsets, looked up once for the loop (null: each call dispatches itself).
  const mmPlan = gemmPlan(B, G, hm ? ws.hd! : hs, R, gates);
  const gPlan = gatesPlan(H, hard, gates, cs, cs, tanhC, hs);
  for (let b0 = t0, b1 = t0; b0 < t1; b0 = b1) {
    b1 = blockEnd(b0, k, t1, B);
    const base = infer ? b0 : 0, z0 = (b0 - base) * BG; // step t's gates at (t − base)·B·G
    // Input projection for every step of the block at once: (m·B, I) · (I, G) -> (m·B, G), plus bias.
    const x0 = srcOff + b0 * B * I;
    matmulNN((b1 - b0) * B, G, I, src, x0, I, layer.kernel, 0, G, gates, z0, G, false);
    if (layer.bias) addBiasRows((b1 - b0) * B, G, gates, z0, G, layer.bias, 0);
    if (steps && !small && lstmRecurrence(B, H, I, src, x0, layer.kernel, layer.bias, hs, cs, gates, tanhC, R, b0, b1, false, z0, (b0 - base) * BH)) continue;
    for (let t = b0; t < b1; t++) {
      const zOff = (t - base) * BG;
      let hsrc = hs;
      if (hm) {
        // Recurrent dropout: h_{t-1} ⊙ mask into slot t of hd, kept for dRecurrentKernel in backward.
        const hd = ws.hd!, o = t * BH;
        for (let q = 0; q < BH; q++) hd[o + q] = hs[o + q]! * hm[q]!;
        hsrc = hd;
      }
      // z_t += h_{t-1} · recurrentKernel: (B, H) · (H, G), the only inherently sequential matmul.
      // The kernel does not change within the loop: the SIMD backend packs it at t0 and reuses that packing (the
      // blocks' projections between do not disturb it: they pack in another region).
      matmulNN(B, G, H, hsrc, t * BH, H, R, 0, G, gates, zOff, G, true, t === t0 ? HOLD_NEW : HOLD_SAME, mmPlan);
      lstmGatesForward(B, H, gates, zOff, cs, t * BH, cs, (t + 1) * BH, tanhC, (t - base) * BH, hs, (t + 1) * BH, hard, gPlan);
      if (valid) {
        // A masked step passes the state through: h_t = h_{t-1}, c_t = c_{t-1} for that row.
        for (let b = 0; b < B; b++) {
          if (valid[t * B + b]) continue;
          const from = t * BH + b * H, to = from + BH;
          hs.copyWithin(to, from, from + H);
          cs.copyWithin(to, from, from + H);
        }
      }
    }
  }
}

/**
 * Backward over steps [tb, t1), the mirror of `lstmForward`.
 *
 * - `dhSeq`, when given, is dL/dh_t from above (a sequence-returning layer), time-major, for the steps
 *   t ≥ dhSeqFrom: step t at dhSeqOff + (t - dhSeqFrom)·B·H. Earlier steps get nothing from above.
 * - `dhNext`, `dcNext` (B, H), when given, are the gradients reaching h_{t1-1} and c_{t1-1} from after
 *   the range (the loss on the last step, or a later window in truncated BPTT).
 * Accumulates into dKernel, dRecurrentKernel, dBias; writes dxs rows [tb, t1) and leaves dL/dh_{tb-1},
 * dL/dc_{tb-1} (the gradients w.r.t. the range's initial state) in ws.dh, ws.dc.
 */
export function lstmBackward(
  layer: LSTM, ws: LSTMWorkspace,
  xs: FloatArray, xOff: number,                  // (cap, B, I)
  tb: number, t1: number,
  dhSeq: FloatArray | null, dhSeqOff: number, dhSeqFrom: number, // (·, B, H), step t ≥ dhSeqFrom
  dhNext: FloatArray | null, dhNextOff: number,  // (B, H)
  dcNext: FloatArray | null, dcNextOff: number,  // (B, H)
  dhNorms: Float64Array | null = null,           // (cap) out: ‖dL/dh_t‖ over the batch, when asked
  study: StudyBuffers | null = null, // (cap, B, H) each, out: dL/dh_t and dL/dc_t, when asked
  valid: Uint8Array | null = null,               // (cap, B): 0 where a step is masked
  needDx = true,                                 // false: nobody reads dxs (the bottom layer of a training step)
): void {
  const B = ws.B, H = layer.units, G = 4 * H, I = layer.inputDim!;
  const { hs, cs, gates, tanhC, dZ, dxs, dh, dc } = ws;
  const BH = B * H;
  const xm = ws.dropping ? ws.xMask : null, hm = ws.dropping ? ws.hMask : null;
  for (let k = 0; k < BH; k++) {
    dh[k] = dhNext ? dhNext[dhNextOff + k]! : 0;
    dc[k] = dcNext ? dcNext[dcNextOff + k]! : 0;
  }
  const n = t1 - tb;
  if (n <= 0) return;
  const hard = layer.recurrentActivation === "hardSigmoid";
  // The inputs the forward products read (masked copies under dropout), for the weight gradients.
  const xIn = xm ? ws.xd! : xs, xInOff = xm ? tb * B * I : xOff + tb * B * I;
  // A batch of fewer than four rows on the SIMD backend, nothing asked per step but the gradients from above: the
  // loop in one call (1), and the weight gradients in it too when they are small (2; see SMALL_PRODUCT).
  const plain = !hard && !hm && !valid && !study && !dhNorms;
  const done = plain ? lstmRecurrenceBackward(
    B, H, I, cs, gates, tanhC, dh, dc, dZ, layer.recurrentKernel, tb, t1, dhSeq, dhSeqOff, dhSeqFrom, xIn, xInOff, hs, layer.dWeights, layer.dBias,
  ) : 0;
  if (done === 0) backwardSteps(layer, ws, tb, t1, hard, dhSeq, dhSeqOff, dhSeqFrom, dhNorms, study, valid);
  if (done !== 2) {
    // Weight gradients over all n·B rows at once, in one product on dZ (see matmulTN2): dKernel (I, G) += xsᵀ · dZ,
    // with xs rows (n·B, I), and after it dRecurrentKernel (H, G) += h_{t-1}ᵀ · dZ: hs slots tb … t1-1 are exactly
    // h_{t-1} for t in [tb, t1).
    matmulTN2(I, H, G, n * B, xIn, xInOff, I, hm ? ws.hd! : hs, tb * BH, H, dZ, tb * B * G, G, layer.dWeights, 0, G, true);
    if (layer.dBias) sumRowsInto(n * B, G, dZ, tb * B * G, G, layer.dBias, 0);
  }
  // dxs (n·B, I) = dZ · kernelᵀ, through the input mask if any. The bottom layer's is dL/dx, which a training
  // step does not use: skipping it there saves a sixth to a ninth of the step's products.
  if (!needDx) return;
  matmulNT(n * B, I, G, dZ, tb * B * G, G, layer.kernel, 0, G, dxs, tb * B * I, I, false);
  if (xm) dropInputGrads(B, I, dxs, tb, t1, xm);
}

/** lstmBackward's loop over the steps, t1 − 1 first: the gates' backward and dh = dz_t·Rᵀ, with what each option adds. */
function backwardSteps(
  layer: LSTM, ws: LSTMWorkspace, tb: number, t1: number, hard: boolean,
  dhSeq: FloatArray | null, dhSeqOff: number, dhSeqFrom: number,
  dhNorms: Float64Array | null, study: StudyBuffers | null, valid: Uint8Array | null,
): void {
  const B = ws.B, H = layer.units, G = 4 * H, BH = B * H;
  const { cs, gates, tanhC, dZ, dh, dc } = ws;
  const hm = ws.dropping ? ws.hMask : null;
  // The SIMD kernels and their arrays' offsets, looked up once for the loop (null: each call dispatches itself).
  const gbPlan = hard ? null : gatesBackPlan(H, gates, cs, tanhC, dh, dc, dZ);
  const ntPlan = gemmPlan(B, H, dZ, layer.recurrentKernel, dh);
  for (let t = t1 - 1; t >= tb; t--) {
    if (dhSeq && t >= dhSeqFrom) {
      const so = dhSeqOff + (t - dhSeqFrom) * BH;
      for (let k = 0; k < BH; k++) dh[k] = dh[k]! + dhSeq[so + k]!;
    }
    if (dhNorms) {
      let s = 0;
      for (let k = 0; k < BH; k++) s += dh[k]! * dh[k]!;
      dhNorms[t] = Math.sqrt(s);
    }
    if (study) {
      // dL/dh_t is dh now; dL/dc_t is what the gate kernel computes first: dc + dh ⊙ o ⊙ (1 - tanh²(c_t)).
      const so = t * BH, go = t * B * G;
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < H; j++) {
          const k = b * H + j, tc = tanhC[so + k]!;
          study.dh[so + k] = dh[k]!;
          study.dc![so + k] = dc[k]! + dh[k]! * gates[go + b * G + 3 * H + j]! * (1 - tc * tc);
        }
      }
    }
    let skips = false;
    if (valid) {
      // A masked step was the identity on (h, c): its row's gradients pass straight to step t-1 (kept aside
      // here), and it has no gate gradient.
      for (let b = 0; b < B; b++) {
        if (valid[t * B + b]) continue;
        if (!skips) { skips = true; ws.keepH ??= new Float64Array(BH); ws.keepC ??= new Float64Array(BH); }
        for (let j = b * H; j < (b + 1) * H; j++) { ws.keepH![j] = dh[j]!; ws.keepC![j] = dc[j]!; }
      }
    }
    if (hard) lstmGatesBackwardHard(B, H, gates, t * B * G, cs, t * BH, tanhC, t * BH, dh, 0, dc, 0, dZ, t * B * G);
    else lstmGatesBackward(B, H, gates, t * B * G, cs, t * BH, tanhC, t * BH, dh, 0, dc, 0, dZ, t * B * G, gbPlan);
    if (skips) for (let b = 0; b < B; b++) if (!valid![t * B + b]) dZ.fill(0, (t * B + b) * G, (t * B + b + 1) * G);
    // dL/dh_{t-1} = dz_t · recurrentKernelᵀ: (B, G) · (H, G)ᵀ -> (B, H), through the recurrent mask if any
    matmulNT(B, H, G, dZ, t * B * G, G, layer.recurrentKernel, 0, G, dh, 0, H, false, t === t1 - 1 ? HOLD_NEW : HOLD_SAME, ntPlan);
    if (hm) for (let k = 0; k < BH; k++) dh[k] = dh[k]! * hm[k]!;
    if (skips) {
      for (let b = 0; b < B; b++) {
        if (valid![t * B + b]) continue;
        for (let j = b * H; j < (b + 1) * H; j++) { dh[j] = ws.keepH![j]!; dc[j] = ws.keepC![j]!; }
      }
    }
  }
}
