/**
 * The GRU's gate kernels on raw typed arrays (resetAfter, the default form): one step's gate math, fused, forward
 * (gruGatesForward) and backward (gruGatesBackward), each running the SIMD kernel (src/wasm/gru-gates.ts) when its
 * arrays live in a model's WebAssembly memory and its gates are σ, else its TypeScript loop. Also hardSigmoid and its
 * derivative, which the loops (and resetAfter false's, in layers/gru.ts) take for TensorFlow.js's gates.
 *
 * Legend: B batch rows, H units, G = 3H gate columns in Keras order z, r, h. One step's gx, gu, dX, dU are (B, 3H),
 * its h_{t−1}, h_t and dh (B, H), each an (array, offset) with rows packed. Per unit, σ the recurrent activation:
 *
 *   z = σ(gx_z + gu_z), r = σ(gx_r + gu_r), ĥ = tanh(gx_h + r ⊙ gu_h), h_t = z ⊙ h_{t−1} + (1 − z) ⊙ ĥ
 *
 * Float64: the SIMD kernel computes this loop's operations in its order, bit for bit. Float32: it computes in float32
 * arithmetic, rounding at each operation, where this loop computes in float64 and rounds where it stores (as the
 * LSTM's kernels; test/wasm-gru.test.ts bounds the difference).
 */
import type { FloatArray } from "./tensor.js";
import * as arenas from "../wasm/arena.js";
import { fastSigmoid, fastTanh } from "./lstm-gates.js";

/** The SIMD gate kernels with their arrays' offsets, for a loop over the steps (see Plan in wasm/arena.ts). */
export type GruGatesPlan = arenas.Plan<arenas.GruGates>;
export type GruGatesBackPlan = arenas.Plan<arenas.GruGatesBack>;

/** tfjs's and Keras 2's hard sigmoid: clip(0.2·x + 0.5, 0, 1). */
export function hardSigmoid(x: number): number {
  const v = 0.2 * x + 0.5;
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/** Its derivative from its value: 0.2 inside the ramp, 0 where it is clipped. */
export function hardSigmoidGrad(s: number): number {
  return s > 0 && s < 1 ? 0.2 : 0;
}

/** For a loop of gruGatesForward calls on the same arrays: the SIMD kernel and offsets, looked up once, or null. */
export function gruGatesPlan(H: number, hard: boolean, gx: FloatArray, gu: FloatArray, hs: FloatArray): GruGatesPlan | null {
  return arenas.anyArena && !hard && (H & 1) === 0 ? arenas.plan(arenas.gruGatesFor(gx, gu, hs)) : null;
}

/** For a loop of gruGatesBackward calls on the same arrays: the SIMD kernel and offsets, looked up once, or null. */
export function gruGatesBackPlan(
  H: number, hard: boolean, gx: FloatArray, gu: FloatArray, hs: FloatArray, dh: FloatArray, dX: FloatArray, dU: FloatArray,
): GruGatesBackPlan | null {
  return arenas.anyArena && !hard && (H & 1) === 0 ? arenas.plan(arenas.gruGatesBackFor(gx, gu, hs, dh, dX, dU)) : null;
}

/**
 * One GRU step's gate math (resetAfter), fused, for B rows of H units: gx (pre-activations x·W + b_x, overwritten
 * in place with the activations z, r, ĥ, which backward takes its derivatives from), gu = h_{t−1}·U + b_h, and
 * h_t = z ⊙ h_{t−1} + (1 − z) ⊙ ĥ into hs at hNextOff (h_{t−1} read at hPrevOff).
 */
export function gruGatesForward(
  B: number, H: number,
  gx: FloatArray, gOff: number,       // (B, 3H), in: x·W + b_x, out: z, r, ĥ
  gu: FloatArray, uOff: number,       // (B, 3H) h_{t−1}·U + b_h
  hs: FloatArray, hPrevOff: number, hNextOff: number, // (B, H) h_{t−1} in, h_t out
  hard: boolean,                      // the gates' σ is hardSigmoid, clip(0.2·x + 0.5, 0, 1)
  plan: GruGatesPlan | null = null,   // from gruGatesPlan, for a loop on the same arrays
): void {
  // The SIMD backend for σ gates: rows from b on in one call, which stops before a row it declines (float64, a σ
  // input below −708): that row runs here, and the next call goes on after it.
  const simd = plan !== null ? plan.run : arenas.anyArena && !hard && (H & 1) === 0 ? arenas.gruGatesFor(gx, gu, hs) : null;
  if (simd !== null) {
    const w = gx.BYTES_PER_ELEMENT, at = plan !== null ? plan.at : arenas.at, G = 3 * H;
    const g0 = at[0]! + w * gOff, u0 = at[1]! + w * uOff, hp0 = at[2]! + w * hPrevOff, hn0 = at[2]! + w * hNextOff;
    for (let b = 0; b < B; b++) {
      b += simd(B - b, H, g0 + w * b * G, u0 + w * b * G, hp0 + w * b * H, hn0 + w * b * H);
      if (b < B) gruForwardLoop(b, b + 1, H, gx, gOff, gu, uOff, hs, hPrevOff, hNextOff, false);
    }
    return;
  }
  gruForwardLoop(0, B, H, gx, gOff, gu, uOff, hs, hPrevOff, hNextOff, hard);
}

/**
 * gruGatesForward's TypeScript loop over rows [b0, b1), in a function of its own (see gatesForwardLoop in
 * lstm-gates.ts: a model on the SIMD backend never runs it, so it keeps seeing one array type).
 */
function gruForwardLoop(
  b0: number, b1: number, H: number, gx: FloatArray, gOff: number, gu: FloatArray, uOff: number,
  hs: FloatArray, hPrevOff: number, hNextOff: number, hard: boolean,
): void {
  const G = 3 * H;
  for (let b = b0; b < b1; b++) {
    const g = gOff + b * G, u = uOff + b * G, h0 = hPrevOff + b * H, h1 = hNextOff + b * H;
    for (let j = 0; j < H; j++) {
      const zp = gx[g + j]! + gu[u + j]!, rp = gx[g + H + j]! + gu[u + H + j]!;
      const z = hard ? hardSigmoid(zp) : fastSigmoid(zp), r = hard ? hardSigmoid(rp) : fastSigmoid(rp);
      const c = fastTanh(gx[g + 2 * H + j]! + r * gu[u + 2 * H + j]!);
      gx[g + j] = z; gx[g + H + j] = r; gx[g + 2 * H + j] = c;
      hs[h1 + j] = z * hs[h0 + j]! + (1 - z) * c;
    }
  }
}

/**
 * The backward of gruGatesForward for one step. Takes dh (the full gradient reaching h_t) and the activations
 * forward saved; writes dX = dL/d[x_z + h_z, x_r + h_r, x_h] and dU = dL/d[h_z, h_r, h_h] (= dX but ĥ's ⊙ r), and
 * replaces dh by d ⊙ z, the mix's own path to h_{t−1} (the caller adds dU·Uᵀ).
 */
export function gruGatesBackward(
  B: number, H: number,
  gx: FloatArray, gOff: number,   // (B, 3H) z, r, ĥ saved by forward
  gu: FloatArray, uOff: number,   // (B, 3H) h_{t−1}·U + b_h
  hs: FloatArray, hOff: number,   // (B, H) h_{t−1}
  dh: FloatArray, dhOff: number,  // (B, H) in: dL/dh_t, out: d ⊙ z
  dX: FloatArray, dxOff: number,  // (B, 3H) out
  dU: FloatArray, duOff: number,  // (B, 3H) out
  hard: boolean,                  // hardSigmoid gates (TypeScript only)
  plan: GruGatesBackPlan | null = null, // from gruGatesBackPlan, for a loop on the same arrays
): void {
  const simd = plan !== null ? plan.run : arenas.anyArena && !hard && (H & 1) === 0 ? arenas.gruGatesBackFor(gx, gu, hs, dh, dX, dU) : null;
  if (simd !== null) {
    const w = gx.BYTES_PER_ELEMENT, at = plan !== null ? plan.at : arenas.at;
    simd(B, H, at[0]! + w * gOff, at[1]! + w * uOff, at[2]! + w * hOff, at[3]! + w * dhOff, at[4]! + w * dxOff, at[5]! + w * duOff);
    return;
  }
  gruBackwardLoop(B, H, gx, gOff, gu, uOff, hs, hOff, dh, dhOff, dX, dxOff, dU, duOff, hard);
}

/** gruGatesBackward's TypeScript loop, in a function of its own for the reason gruForwardLoop gives. */
function gruBackwardLoop(
  B: number, H: number, gx: FloatArray, gOff: number, gu: FloatArray, uOff: number, hs: FloatArray, hOff: number,
  dh: FloatArray, dhOff: number, dX: FloatArray, dxOff: number, dU: FloatArray, duOff: number, hard: boolean,
): void {
  const G = 3 * H;
  for (let b = 0; b < B; b++) {
    const g = gOff + b * G, u = uOff + b * G, x = dxOff + b * G, q = duOff + b * G, h0 = hOff + b * H;
    for (let j = 0; j < H; j++) {
      const k = dhOff + b * H + j, d = dh[k]!, z = gx[g + j]!, r = gx[g + H + j]!, c = gx[g + 2 * H + j]!;
      const dzp = d * (hs[h0 + j]! - c) * (hard ? hardSigmoidGrad(z) : z * (1 - z));
      const dcp = d * (1 - z) * (1 - c * c);
      const drp = dcp * gu[u + 2 * H + j]! * (hard ? hardSigmoidGrad(r) : r * (1 - r));
      dX[x + j] = dzp; dX[x + H + j] = drp; dX[x + 2 * H + j] = dcp;
      dU[q + j] = dzp; dU[q + H + j] = drp; dU[q + 2 * H + j] = dcp * r;
      dh[k] = d * z; // the mix's own path to h_{t−1}
    }
  }
}
