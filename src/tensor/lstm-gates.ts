/**
 * The LSTM kernels on raw typed arrays: one step's gate math, fused, forward (lstmGatesForward) and backward
 * (lstmGatesBackward; lstmGatesBackwardHard for hardSigmoid gates); the σ and tanh that its loops inline
 * (fastSigmoid, fastTanh, which Dense's activations use too); and a layer's recurrence over many steps in one
 * SIMD call, for a batch of fewer than four rows (lstmRecurrence, lstmRecurrenceBackward). Each runs the SIMD
 * kernel (src/wasm/gates.ts, src/wasm/steps.ts) when its arrays live in a model's WebAssembly memory, else its
 * TypeScript loop.
 *
 * Legend: B batch rows, H units, G = 4H gate columns in Keras order i, f, c (g), o. One step's z and gates are
 * (B, 4H), c, cPrev, tanhC, h, dh and dc (B, H), each an (array, offset) with rows packed. The recurrence's
 * buffers hold every step: hs, cs (·, B, H) by slot, gates, dz (·, B, 4H) and tanhC (·, B, H) by step, x (·, I);
 * W (I, 4H), R (H, 4H).
 */
import type { FloatArray } from "./tensor.js";
import * as math from "./math.js";
import * as arenas from "../wasm/arena.js";
import { KC_TN } from "../wasm/gemm.js";

// ---------------------------------------------------------------------------------------------------
// exp, sigmoid and tanh for the gates. V8's Math.exp costs ~9 ns and Math.tanh ~15 ns (calls into C);
// with three sigmoids and two tanh per unit they were most of a small model's step. These inline into
// the gate loop and are within 3 ulp of the correctly rounded values (test/kernels.test.ts measures against mpmath).
//
// Both use the table method of tensor/math.ts (whose tables they read): x = (64m + j)·ln2/64 + r with
// |r| ≤ ln2/128, so exp(x) = 2^m · 2^(j/64) · exp(r), and exp(r) - 1 is a degree-6 polynomial whose
// truncation error is below 2^-55 on that interval. They use arithmetic only, so every engine computes
// the same bits (see math.ts for why that matters).
//
// The tables and constants are copied into this module's own consts once: the hot loops then read a
// local binding, never an imported one (which the CommonJS build turns into a getter call).
const EXP2_FRAC = math.EXP2_FRAC, POW2 = math.POW2, EXPM1_TABLE = math.EXPM1_TABLE;
const POW2_BIAS = math.POW2_BIAS, EXPM1_RANGE = math.EXPM1_RANGE, INV_LN2_64 = math.INV_LN2_64;
const LN2_64_HI = math.LN2_64_HI, LN2_64_LO = math.LN2_64_LO, ROUND_SHIFT = math.ROUND_SHIFT;
const EXP = math.exp;

/**
 * σ(x) = 1 / (1 + exp(-x)), and exp(x) below -708: there e^x / (1 + e^x) is e^x to double precision, and
 * exp(x) stays right into the subnormal tail, where exp(-x) would overflow and give 0 long before σ is 0.
 * Within 3 ulp of the correctly rounded σ over the whole double range (test/kernels.test.ts, against mpmath).
 * It repeats the body of math.ts's exp rather than calling it: V8 then inlines the whole thing into the gate
 * loop (a call that is not inlined also boxes its double result on the heap); the tail's call is cold.
 */
export function fastSigmoid(x: number): number {
  if (x < -708) return EXP(x);
  const v = x > 745.2 ? 745.2 : x; // past 745.2 exp(-v) is 0 and σ is 1; the clamp keeps the table index in range
  const nf = (-v * INV_LN2_64 + ROUND_SHIFT) - ROUND_SHIFT;
  const n = nf | 0;
  const r = (-v - nf * LN2_64_HI) - nf * LN2_64_LO;
  const q = r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720))))));
  const t = EXP2_FRAC[n & 63]!;
  return 1 / (1 + POW2[(n >> 6) + POW2_BIAS]! * (t + t * q));
}

/**
 * tanh(x) = -expm1(-2x) / (expm1(-2x) + 2), which keeps full relative precision near 0 (1 - 2/(e^2x + 1)
 * does not); past |x| = 22 tanh is ±1 in double precision, so x is clamped there. Within 3 ulp of the correctly rounded tanh (against mpmath).
 */
export function fastTanh(x: number): number {
  const y = -2 * (x > 22 ? 22 : x < -22 ? -22 : x);
  const nf = (y * INV_LN2_64 + ROUND_SHIFT) - ROUND_SHIFT;
  const n = nf | 0;
  const r = (y - nf * LN2_64_HI) - nf * LN2_64_LO;
  const q = r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720))))));
  let em1: number; // expm1(y) = 2^(n/64)·(1 + q) - 1
  if (n >= -EXPM1_RANGE && n <= EXPM1_RANGE) {
    const tm = EXPM1_TABLE[n + EXPM1_RANGE]!;
    em1 = tm + (q + tm * q);
  } else {
    const t = EXP2_FRAC[n & 63]!;
    em1 = POW2[(n >> 6) + POW2_BIAS]! * (t + t * q) - 1;
  }
  return -em1 / (em1 + 2);
}

/** The SIMD gate kernels with their arrays' offsets, for a loop over the steps (see Plan in wasm/arena.ts). */
export type GatesPlan = arenas.Plan<arenas.Gates>;
export type GatesBackPlan = arenas.Plan<arenas.GatesBack>;

/** For a loop of lstmGatesForward calls on the same arrays: the SIMD kernel and offsets, looked up once, or null. */
export function gatesPlan(H: number, hard: boolean, z: FloatArray, cPrev: FloatArray, c: FloatArray, tanhC: FloatArray, h: FloatArray): GatesPlan | null {
  return arenas.anyArena && !hard && (H & 1) === 0 ? arenas.plan(arenas.gatesFor(z, cPrev, c, tanhC, h)) : null;
}

/** For a loop of lstmGatesBackward calls on the same arrays: the SIMD kernel and offsets, looked up once, or null. */
export function gatesBackPlan(H: number, gates: FloatArray, cPrev: FloatArray, tanhC: FloatArray, dh: FloatArray, dc: FloatArray, dz: FloatArray): GatesBackPlan | null {
  return arenas.anyArena && (H & 1) === 0 ? arenas.plan(arenas.gatesBackFor(gates, cPrev, tanhC, dh, dc, dz)) : null;
}

/**
 * One LSTM step's gate math, fused, for B rows of H units (Keras gate order i, f, c, o):
 * z (pre-activations, overwritten in place with the activations i, f, g, o), then
 * c = f ⊙ cPrev + i ⊙ g, tanhC = tanh(c), h = o ⊙ tanhC.
 * The activations are kept because backward takes every derivative from the saved outputs
 * (σ' = σ(1-σ), tanh' = 1-tanh²), so no exp is recomputed.
 */
export function lstmGatesForward(
  B: number, H: number,
  z: FloatArray, zOff: number,          // (B, 4H), in: pre-activation, out: activations
  cPrev: FloatArray, cPrevOff: number,  // (B, H)
  c: FloatArray, cOff: number,          // (B, H) out
  tanhC: FloatArray, tOff: number,      // (B, H) out
  h: FloatArray, hOff: number,          // (B, H) out
  hard: boolean,                        // the gates' σ is hardSigmoid, clip(0.2·x + 0.5, 0, 1)
  plan: GatesPlan | null = null,         // from gatesPlan, for a loop on the same arrays
): void {
  // The SIMD backend, when the arrays live in a model's WebAssembly memory (src/wasm/gates.ts): in float64 the same
  // arithmetic two units at a time, bit for bit, declining (1) a step with a σ input below -708, which runs here;
  // in float32, float32 arithmetic four units at a time, within a few float32 ulps of this. A plan has looked it up.
  const simd = plan !== null ? plan.run : arenas.anyArena && !hard && (H & 1) === 0 ? arenas.gatesFor(z, cPrev, c, tanhC, h) : null;
  if (simd !== null) {
    const w = z.BYTES_PER_ELEMENT, at = plan !== null ? plan.at : arenas.at;
    if (simd(B, H, at[0]! + w * zOff, at[1]! + w * cPrevOff, at[2]! + w * cOff, at[3]! + w * tOff, at[4]! + w * hOff) === 0) return;
  }
  gatesForwardLoop(B, H, z, zOff, cPrev, cPrevOff, c, cOff, tanhC, tOff, h, hOff, hard);
}

/**
 * lstmGatesForward's TypeScript loop, in a function of its own: a model on the SIMD backend passes its arrays
 * through lstmGatesForward without running this, so a process that has both (a float32 SIMD model, a float64
 * TypeScript one) keeps this loop seeing one array type, with fastSigmoid and fastTanh inlined. (In one function,
 * V8 compiled the loop for both types, called fastTanh, and boxed each result: ~0.4 MB of garbage per S1 step.)
 */
function gatesForwardLoop(
  B: number, H: number, z: FloatArray, zOff: number, cPrev: FloatArray, cPrevOff: number, c: FloatArray, cOff: number,
  tanhC: FloatArray, tOff: number, h: FloatArray, hOff: number, hard: boolean,
): void {
  const G = 4 * H, H2 = 2 * H, H3 = 3 * H;
  for (let b = 0; b < B; b++) {
    const zb = zOff + b * G;
    // Activations in place: σ on i, f (columns [0, 2H)) and o ([3H, 4H)), tanh on g ([2H, 3H)).
    // One call site per function: V8 inlines a limited amount of code into one function, and three
    // σ sites plus two tanh sites would leave one as a real call (with a boxed result) per unit.
    if (hard) {
      for (let k = 0; k < H3; k++) {
        const q = zb + (k < H2 ? k : k + H);
        const v = 0.2 * z[q]! + 0.5;
        z[q] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    } else {
      for (let k = 0; k < H3; k++) {
        const q = zb + (k < H2 ? k : k + H);
        z[q] = fastSigmoid(z[q]!);
      }
    }
    for (let q = zb + H2; q < zb + H3; q++) z[q] = fastTanh(z[q]!);
    const sb = b * H;
    for (let j = 0; j < H; j++) {
      const zi = zb + j;
      const cv = z[zi + H]! * cPrev[cPrevOff + sb + j]! + z[zi]! * z[zi + H2]!; // f ⊙ c_{t-1} + i ⊙ g
      c[cOff + sb + j] = cv;
      const tc = fastTanh(cv);
      tanhC[tOff + sb + j] = tc;
      h[hOff + sb + j] = z[zi + H3]! * tc;
    }
  }
}

/**
 * Products of at most this many multiply-adds run inside lstmRecurrence's call (the input projection) and
 * lstmRecurrenceBackward's (the weight gradients), in the rows kernel; larger ones run as before, in the tiles,
 * where they are several times faster, and their dispatch from TypeScript costs little beside them. At S0's shape
 * (11·40·10 = 4,400) the dispatch cost more than the product (matmulTN2 took ~1.0 µs from TypeScript, ~0.6 in
 * the rows kernel inside the call); with B = 1, T = 50, I = 32, H = 64 (1.2 million) the rows kernel made the step
 * 1.2× slower, and at I = 128, H = 256 1.55× (scratch probes).
 */
export const SMALL_PRODUCT = 16384;

/**
 * When lstmRecurrence's call packs R in strips first, for its products to read as contiguous runs (R's rows are 4H
 * values apart): from `steps` steps on, for an R of at least `bytes` (past L1, where its rows' runs stop being cheap to
 * gather). The rows kernel alone, a batch of one, float32: H = 64 1.45 µs a product on the packing against 2.29 on R in
 * place, H = 256 32.5 against 79.0; whole predicts, interleaved, B = 3, T = 100, H = 128 0.64× the time, B = 1, T = 100,
 * H = 64 0.94×, but H = 10 1.26× and T = 4 1.13× (the packing costs what a few steps save). A stream's one-step calls
 * read R in place. (@internal: an object, so that the tests can make every call pack, or none.)
 */
export const packR = { steps: 8, bytes: 32768 };

/**
 * An LSTM layer's forward over steps [t0, t1) in one SIMD call, for a batch of fewer than four rows: per step
 * z_t += h_{t−1}·R and lstmGatesForward, as lstmForward's loop calls them, the same kernels on the same arguments,
 * so the same bits (src/wasm/steps.ts); with `project`, first the input projection z = x·W + bias of every step,
 * as lstmForward's product and bias rows compute it (the caller asks for it when small: SMALL_PRODUCT). x (·, I):
 * the steps' input rows from xOff (step t0's first); W (I, 4H); R (H, 4H); hs, cs (·, B, H) by slot, step t reading
 * slot t and writing slot t + 1; gates (·, B, 4H), holding the projection when not `project`, and tanhC (·, B, H)
 * by step (step t0's at gOff and tOff, by default at its own step; a forward-only pass's block has them at the front).
 * Returns false, having done nothing, when it does not apply (not the SIMD backend, B ≥ 4, H odd, an array elsewhere):
 * the caller runs its own. A float64 step the SIMD gate kernel declines (a σ input below −708) runs its gates in
 * TypeScript. R is packed first for long runs (packR).
 */
export function lstmRecurrence(
  B: number, H: number, I: number, x: FloatArray, xOff: number, W: FloatArray, bias: FloatArray | null,
  hs: FloatArray, cs: FloatArray, gates: FloatArray, tanhC: FloatArray, R: FloatArray, t0: number, t1: number, project: boolean,
  gOff = t0 * 4 * B * H, tOff = t0 * B * H, // where step t0's gates and tanh(c) are
): boolean {
  const steps = arenas.anyArena && B < 4 && (H & 1) === 0 ? arenas.stepsFor(hs, cs, gates, tanhC, R, x, W, bias) : null;
  if (steps === null) return false;
  const w = hs.BYTES_PER_ELEMENT, at = arenas.at, BH = B * H, BG = 4 * BH;
  const h0 = at[0]!, c0 = at[1]!, z0 = at[2]! + w * (gOff - t0 * BG), tc0 = at[3]! + w * (tOff - t0 * BH), r0 = at[4]!;
  const xAt = at[5]! + w * xOff, wAt = at[6]!, bAt = at[7]!;
  // Each call runs from step t and stops before a declined step t' (its product added): t' runs its gates here,
  // and the loop's t++ resumes after it. Only the first call projects the inputs (of every step).
  for (let t = t0; t < t1; t++) {
    const first = project && t === t0 ? 1 : 0, pack = t1 - t >= packR.steps && 4 * H * H * w >= packR.bytes ? 1 : 0;
    t += steps.forward(t1 - t, B, H, h0 + w * t * BH, c0 + w * t * BH, z0 + w * t * BG, tc0 + w * t * BH, r0, I, xAt, wAt, bAt, first, pack);
    if (t < t1) gatesForwardLoop(B, H, gates, gOff + (t - t0) * BG, cs, t * BH, cs, (t + 1) * BH, tanhC, tOff + (t - t0) * BH, hs, (t + 1) * BH, false);
  }
  return true;
}

/**
 * The backward of lstmRecurrence over steps [tb, t1) in one call: per step, t1 − 1 first, dh += dL/dh_t from the
 * layer above (dhSeq, for the steps t ≥ dhSeqFrom, (·, B, H) from dhSeqOff), lstmGatesBackward, then dh = dz_t·Rᵀ;
 * then, when the product is small (SMALL_PRODUCT), the weight gradients dW (I + H, 4H) += [xᵀ; h_{t−1}ᵀ]·dz and
 * dBias += dz's column sums over the n·B rows, as lstmBackward's matmulTN2 and sumRowsInto sum them: the same
 * bits. dh, dc (B, H): in, the gradients reaching the last step's h and c; out, those reaching h_{tb−1} and
 * c_{tb−1}. dz (·, B, 4H) by step; x (·, I) from xOff (step tb's first row); hs by slot (slot tb is h_{tb−1}).
 * Returns 0, having done nothing, when it does not apply (as lstmRecurrence, or H < 8); 1 when it ran the loop
 * (the caller then computes the weight gradients); 2 when it computed them too.
 */
export function lstmRecurrenceBackward(
  B: number, H: number, I: number, cs: FloatArray, gates: FloatArray, tanhC: FloatArray, dh: FloatArray, dc: FloatArray, dz: FloatArray,
  R: FloatArray, tb: number, t1: number, dhSeq: FloatArray | null, dhSeqOff: number, dhSeqFrom: number,
  x: FloatArray, xOff: number, hs: FloatArray, dW: FloatArray, dBias: FloatArray | null,
): 0 | 1 | 2 {
  // (H ≥ 8: below that, dh = dz·Rᵀ ran in TypeScript's kernels, whose sums may round differently; it stays there.)
  const steps = arenas.anyArena && B < 4 && H >= 8 && (H & 1) === 0
    ? arenas.stepsBackFor(cs, gates, tanhC, dh, dc, dz, R, dhSeq, x, hs, dW, dBias) : null;
  if (steps === null) return 0;
  const w = cs.BYTES_PER_ELEMENT, at = arenas.at, BH = B * H, BG = 4 * BH, t = t1 - 1;
  // the top steps that have a gradient from above: t ≥ dhSeqFrom, from t1 − 1 down
  const nSeq = dhSeq === null ? 0 : Math.max(0, t1 - Math.max(dhSeqFrom, tb));
  const ds = nSeq > 0 ? at[7]! + w * (dhSeqOff + (t - dhSeqFrom) * BH) : 0;
  // (at most KC_TN rows: one block of matmulTN2's sum, always so below SMALL_PRODUCT)
  const weights = (I + H) * BG * (t1 - tb) <= SMALL_PRODUCT && (t1 - tb) * B <= KC_TN ? 1 : 0;
  steps.backward(
    t1 - tb, B, H, at[0]! + w * t * BH, at[1]! + w * t * BG, at[2]! + w * t * BH, at[3]!, at[4]!, at[5]! + w * t * BG, at[6]!, ds, nSeq,
    I, at[8]! + w * xOff, at[9]! + w * tb * BH, at[10]!, at[11]!, weights,
  );
  return weights ? 2 : 1;
}

/**
 * The backward of `lstmGatesForward` for one step. Takes dh (the full gradient reaching h_t) and
 * dc (the gradient reaching c_t from step t+1), writes dz (B, 4H) and replaces dc by the gradient
 * reaching c_{t-1}, which is dc ⊙ f. For σ gates; `lstmGatesBackwardHard` is the same for hardSigmoid gates.
 */
export function lstmGatesBackward(
  B: number, H: number,
  gates: FloatArray, gOff: number,      // (B, 4H) activations i, f, g, o saved by forward
  cPrev: FloatArray, cPrevOff: number,  // (B, H) c_{t-1}
  tanhC: FloatArray, tOff: number,      // (B, H) tanh(c_t)
  dh: FloatArray, dhOff: number,        // (B, H) dL/dh_t
  dc: FloatArray, dcOff: number,        // (B, H) in: dL/dc_t from later steps, out: dL/dc_{t-1}
  dz: FloatArray, dzOff: number,        // (B, 4H) out: dL/dz_t
  plan: GatesBackPlan | null = null,     // from gatesBackPlan, for a loop on the same arrays
): void {
  // The SIMD backend (src/wasm/gates.ts): the same arithmetic two units at a time in float64, bit for bit; four in
  // float32 arithmetic (rounding at each operation, where this loop rounds at the stores). A plan has looked it up.
  const simd = plan !== null ? plan.run : arenas.anyArena && (H & 1) === 0 ? arenas.gatesBackFor(gates, cPrev, tanhC, dh, dc, dz) : null;
  if (simd !== null) {
    const w = gates.BYTES_PER_ELEMENT, at = plan !== null ? plan.at : arenas.at;
    simd(B, H, at[0]! + w * gOff, at[1]! + w * cPrevOff, at[2]! + w * tOff, at[3]! + w * dhOff, at[4]! + w * dcOff, at[5]! + w * dzOff);
    return;
  }
  gatesBackwardLoop(B, H, gates, gOff, cPrev, cPrevOff, tanhC, tOff, dh, dhOff, dc, dcOff, dz, dzOff);
}

/** lstmGatesBackward's TypeScript loop, in a function of its own for the reason gatesForwardLoop gives. */
function gatesBackwardLoop(
  B: number, H: number, gates: FloatArray, gOff: number, cPrev: FloatArray, cPrevOff: number, tanhC: FloatArray, tOff: number,
  dh: FloatArray, dhOff: number, dc: FloatArray, dcOff: number, dz: FloatArray, dzOff: number,
): void {
  const G = 4 * H;
  for (let b = 0; b < B; b++) {
    const gb = gOff + b * G, db = dzOff + b * G, sb = b * H;
    for (let j = 0; j < H; j++) {
      const ig = gates[gb + j]!, fg = gates[gb + H + j]!, gg = gates[gb + 2 * H + j]!, og = gates[gb + 3 * H + j]!;
      const tc = tanhC[tOff + sb + j]!;
      const dhv = dh[dhOff + sb + j]!;
      // c_t reaches the loss through h_t = o ⊙ tanh(c_t) and through c_{t+1} = f ⊙ c_t + …;
      // σ' comes from the saved output: σ(1-σ).
      const dcv = dc[dcOff + sb + j]! + dhv * og * (1 - tc * tc);
      dz[db + j] = dcv * gg * ig * (1 - ig);
      dz[db + H + j] = dcv * cPrev[cPrevOff + sb + j]! * fg * (1 - fg);
      dz[db + 2 * H + j] = dcv * ig * (1 - gg * gg);
      dz[db + 3 * H + j] = dhv * tc * og * (1 - og);
      dc[dcOff + sb + j] = dcv * fg;
    }
  }
}

/**
 * `lstmGatesBackward` for hardSigmoid gates, whose derivative is 0.2 on the ramp and 0 where it clips (at the
 * corners too, as PyTorch's hardsigmoid). A separate function rather than a flag: a flag tested per element
 * measured 1.5× slower on the σ path, and one tested outside two copies of the loop still 1.2× (the larger
 * function compiles worse); this way the σ kernel is exactly what it was.
 */
export function lstmGatesBackwardHard(
  B: number, H: number,
  gates: FloatArray, gOff: number,      // (B, 4H) activations i, f, g, o saved by forward
  cPrev: FloatArray, cPrevOff: number,  // (B, H) c_{t-1}
  tanhC: FloatArray, tOff: number,      // (B, H) tanh(c_t)
  dh: FloatArray, dhOff: number,        // (B, H) dL/dh_t
  dc: FloatArray, dcOff: number,        // (B, H) in: dL/dc_t from later steps, out: dL/dc_{t-1}
  dz: FloatArray, dzOff: number,        // (B, 4H) out: dL/dz_t
): void {
  const G = 4 * H;
  for (let b = 0; b < B; b++) {
    const gb = gOff + b * G, db = dzOff + b * G, sb = b * H;
    for (let j = 0; j < H; j++) {
      const ig = gates[gb + j]!, fg = gates[gb + H + j]!, gg = gates[gb + 2 * H + j]!, og = gates[gb + 3 * H + j]!;
      const tc = tanhC[tOff + sb + j]!;
      const dhv = dh[dhOff + sb + j]!;
      const dcv = dc[dcOff + sb + j]! + dhv * og * (1 - tc * tc);
      dz[db + j] = ig > 0 && ig < 1 ? 0.2 * dcv * gg : 0;
      dz[db + H + j] = fg > 0 && fg < 1 ? 0.2 * dcv * cPrev[cPrevOff + sb + j]! : 0;
      dz[db + 2 * H + j] = dcv * ig * (1 - gg * gg);
      dz[db + 3 * H + j] = og > 0 && og < 1 ? 0.2 * dhv * tc : 0;
      dc[dcOff + sb + j] = dcv * fg;
    }
  }
}
