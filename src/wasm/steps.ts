/**
 * An LSTM layer's forward and backward in one call each, for a batch of fewer than four rows, run inside
 * WebAssembly instead of calling a few kernels per step from TypeScript.
 *
 * With a batch of one (the seed tutorial's model: H = 10, T = 10), a step's product and gate math take a few
 * hundred nanoseconds, and the TypeScript around each kernel call (the product's dispatch, offsets, the call into
 * WebAssembly) cost as much again. Here the same kernels run, called from the module, on the same arrays with the
 * same arguments, so the results are the very same bits as lstm.ts's calls give (test/wasm.test.ts compares them).
 *
 * - `forward` (`forward32`): when asked (small products), the input projection z = x·W (+ bias) of every step
 *   (the rows kernel, each entry summed in k order from zero as the product's tiles sum it, then the bias rows);
 *   then for t = 0 … n − 1 the rows kernel adds h_{t−1}·R into z_t (R in place: strip s of its columns at
 *   R + 32·s) and the step's gate kernel runs. It returns the number of steps done: fewer than n when the float64 gate kernel declines a step
 *   (a σ input below −708), whose product has then been added; the caller runs that step's gates in TypeScript and
 *   calls again from the next step, without the projection.
 * - `backward` (`backward32`): packs Rᵀ in strips once (as the products' held packing does, with its last
 *   columns as a partial strip), then for t = n − 1 … 0: dh += the gradient from a layer above (if the step has
 *   one), the gates' backward, and dh = dz_t·Rᵀ; then, when asked (small products: see SMALL_PRODUCT in
 *   kernels.ts), the weight gradients [xᵀ; h_{t−1}ᵀ]·dz over at most KC_TN rows, as matmulTN2 sums them, and the
 *   bias gradient's column sums.
 *
 * Parameters are byte offsets into the memory, of the range's first step (forward) or last (backward).
 */
import { Code, I32, assemble, type FunctionDef, type ValType } from "./assembler.js";
import { rows, pack, packT32 } from "./gemm.js";
import { biasRows, gatesBackward, gatesForward, gatesForward32 } from "./gates.js";

// The module's functions, in this order (a call names a function by its position).
const ROWS64 = 0, ROWS32 = 1, GATES64 = 2, GATES32 = 3, BACK64 = 4, BACK32 = 5, PACK64 = 6, PACK32 = 7;
const ADD_BIAS64 = 8, ADD_BIAS32 = 9, SUM_ROWS64 = 10, SUM_ROWS32 = 11, PACKN64 = 12, PACKN32 = 13;

/**
 * forward(n, B, H, hs, cs, z, tc, R[, tab], I, x, W, bias, project, dst) → steps done. hs, cs: slot t0 of h and c
 * (h_{t−1}, c_{t−1}; step t writes slot t + 1); z: the gates of step t0, (B, 4H) per step; tc: tanh(c) of step t0;
 * R the recurrent kernel (H, 4H); tab (float64): the gate tables. With `project`, z of the n steps is first
 * x·W (+ bias), x (n·B, I) the inputs from step t0, W (I, 4H), bias (4H) or 0: lstmForward's input projection,
 * the rows kernel summing each entry in k order from zero as the product's tiles do, then the bias rows. dst: where
 * to pack R in strips first (4H·H values), which the steps' products then read (with a batch of one, B = 1, H = 64,
 * float32: 1.45 µs a product where R in place, its rows 1 KiB apart, took 2.29), or 0: R in place (one step or two,
 * where the packing would cost more than it saves).
 */
function forward(w: 4 | 8): FunctionDef {
  const f64 = w === 8;
  const params: ValType[] = Array.from({ length: f64 ? 15 : 14 }, () => I32);
  const N = 0, B = 1, H = 2, HS = 3, CS = 4, Z = 5, TC = 6, R = 7, at = f64 ? 9 : 8, TAB = 8;
  const I = at, X = at + 1, W = at + 2, BIAS = at + 3, PROJECT = at + 4, DST = at + 5;
  const c = new Code(params);
  const t = c.local(I32), bh = c.local(I32), hw = c.local(I32), gw = c.local(I32), declined = c.local(I32);
  const rb = c.local(I32), rs = c.local(I32), rk = c.local(I32); // R's strips for the rows kernel: where, strip and k strides
  c.get(H).i32(f64 ? 3 : 2).i32Shl().set(hw);        // a row of h: H·w bytes
  c.get(hw).i32(2).i32Shl().set(gw);                   // a row of z: 4H·w
  c.get(B).get(hw).i32Mul().set(bh);                   // a step of h: B·H·w
  // R where it is (strip s at R + 32·s, k at + 4H·w), or, given dst, packed there first (strip s at dst + 32·H·s, k at
  // + 32: each strip one contiguous run, where R's rows are 4H·w bytes apart): the same values, so the same sums.
  c.get(R).set(rb).i32(32).set(rs).get(gw).set(rk);
  c.block();
  c.get(DST).i32Eqz().brIf(0);
  c.get(H).i32(2).i32Shl().get(H).get(R).get(H).i32(2).i32Shl().get(DST).call(f64 ? PACKN64 : PACKN32);
  c.get(DST).set(rb).get(H).i32(5).i32Shl().set(rs).i32(32).set(rk);
  c.end();
  c.block();
  c.get(PROJECT).i32Eqz().brIf(0);
  // z (n·B, 4H) = x·W: 4H·w / 32 whole strips of W where it is
  c.get(N).get(B).i32Mul().get(gw).i32(5).i32ShrS().get(I).get(X).get(I).i32(w).i32Mul().i32(w).get(W).i32(32).get(gw).get(Z).get(gw).i32(0).i32(0);
  c.call(f64 ? ROWS64 : ROWS32);
  c.block();
  c.get(BIAS).i32Eqz().brIf(0);
  c.get(N).get(B).i32Mul().get(H).i32(2).i32Shl().get(Z).get(H).i32(2).i32Shl().get(BIAS).call(f64 ? ADD_BIAS64 : ADD_BIAS32);
  c.end();
  c.end();
  c.i32(0).set(t);
  c.block().loop();
  c.get(t).get(N).i32GeS().brIf(1);
  // z_t += h_{t−1}·R: (B, H)·(H, 4H), 4H·w / 32 whole strips of R where it is
  c.get(B).get(gw).i32(5).i32ShrS().get(H).get(HS).get(hw).i32(w).get(rb).get(rs).get(rk).get(Z).get(gw).i32(1).i32(0);
  c.call(f64 ? ROWS64 : ROWS32);
  // the step's gates: c_t, tanh(c_t), h_t (slot t + 1) from z_t and c_{t−1}
  c.get(B).get(H).get(Z).get(CS).get(CS).get(bh).i32Add().get(TC).get(HS).get(bh).i32Add();
  if (f64) c.get(TAB);
  c.call(f64 ? GATES64 : GATES32).set(declined);
  c.block();
  c.get(declined).i32Eqz().brIf(0);
  c.get(t).return();
  c.end();
  c.get(HS).get(bh).i32Add().set(HS);
  c.get(CS).get(bh).i32Add().set(CS);
  c.get(TC).get(bh).i32Add().set(TC);
  c.get(Z).get(bh).i32(2).i32Shl().i32Add().set(Z);
  c.get(t).i32(1).i32Add().set(t);
  c.br(0).end().end();
  c.get(N);
  return { name: f64 ? "forward" : "forward32", params, results: [I32], code: c };
}

/**
 * backward(n, B, H, cs, g, tc, dh, dc, dz, R, dst, ds, nSeq, I, x, hp, dW, dB, weights). cs, tc: slot t1 − 1 of c
 * (c_{t−1} of the last step) and of tanh(c); g and dz: the activations and dL/dz of the last step, (B, 4H) per step;
 * dh, dc (B, H): the gradients reaching h and c of the last step, replaced step by step, as lstmBackward's loop
 * does; dst: where Rᵀ is packed (4H·⌈H/cols⌉·cols values); ds: dL/dh of the last step from the layer above, (B, H)
 * per step, added to dh in the first nSeq steps (0: none). With `weights`, then dW (I + H, 4H) and dB (4H, or 0
 * for none) from x (n·B, I, from step tb) and hp (h from slot tb, h_{tb−1}).
 */
function backward(w: 4 | 8): FunctionDef {
  const f64 = w === 8;
  const params: ValType[] = Array.from({ length: 19 }, () => I32);
  const N = 0, B = 1, H = 2, CS = 3, G = 4, TC = 5, DH = 6, DC = 7, DZ = 8, R = 9, DST = 10, DS = 11, NSEQ = 12;
  const I = 13, X = 14, HP = 15, DW = 16, DB = 17, WEIGHTS = 18;
  const c = new Code(params);
  const t = c.local(I32), bh = c.local(I32), hw = c.local(I32), gw = c.local(I32), p = c.local(I32), end = c.local(I32);
  const dz0 = c.local(I32);
  c.get(H).i32(f64 ? 3 : 2).i32Shl().set(hw);
  c.get(hw).i32(2).i32Shl().set(gw);
  c.get(B).get(hw).i32Mul().set(bh);
  c.get(DZ).get(N).i32(1).i32Sub().get(bh).i32Mul().i32(2).i32Shl().i32Sub().set(dz0); // dz of step tb
  // Rᵀ in strips: row j of R (H, 4H) is column j of Rᵀ, strip j / cols; the last H mod cols rows a partial strip.
  c.get(H).get(H).i32(2).i32Shl().get(R).get(H).i32(2).i32Shl().get(DST).call(f64 ? PACK64 : PACK32);
  c.i32(0).set(t);
  c.block().loop();
  c.get(t).get(N).i32GeS().brIf(1);
  // The first nSeq steps (from the top): dh += dL/dh_t from the layer above, B·H values at ds, then ds one step down.
  c.block();
  c.get(t).get(NSEQ).i32GeS().brIf(0);
  c.i32(0).set(p);
  c.get(bh).i32(-16).i32And().set(end);
  c.block().loop();
  c.get(p).get(end).i32GeS().brIf(1);
  c.get(DH).get(p).i32Add().get(DH).get(p).i32Add().v128Load(0).get(DS).get(p).i32Add().v128Load(0);
  if (f64) c.f64x2Add(); else c.f32x4Add();
  c.v128Store(0);
  c.get(p).i32(16).i32Add().set(p);
  c.br(0).end().end();
  c.block().loop(); // the last value (float32, B·H ≡ 2 mod 4: two), one at a time
  c.get(p).get(bh).i32GeS().brIf(1);
  c.get(DH).get(p).i32Add();
  if (f64) c.get(DH).get(p).i32Add().f64Load().get(DS).get(p).i32Add().f64Load().f64Add().f64Store();
  else c.get(DH).get(p).i32Add().f32Load().get(DS).get(p).i32Add().f32Load().f32Add().f32Store();
  c.get(p).i32(w).i32Add().set(p);
  c.br(0).end().end();
  c.get(DS).get(bh).i32Sub().set(DS);
  c.end();
  // dz_t and dL/dc_{t−1} from dh, dc and the step's saved activations
  c.get(B).get(H).get(G).get(CS).get(TC).get(DH).get(DC).get(DZ).call(f64 ? BACK64 : BACK32);
  // dL/dh_{t−1} = dz_t·Rᵀ: (B, 4H)·(4H, H), on the packing (strip s at dst + 32·4H·s, k at + 32·k)
  c.get(B).get(hw).i32(5).i32ShrS().get(H).i32(2).i32Shl().get(DZ).get(gw).i32(w).get(DST).get(H).i32(7).i32Shl().i32(32)
    .get(DH).get(hw).i32(0).get(hw).i32(31).i32And().i32(f64 ? 3 : 2).i32ShrS();
  c.call(f64 ? ROWS64 : ROWS32);
  c.get(CS).get(bh).i32Sub().set(CS);
  c.get(TC).get(bh).i32Sub().set(TC);
  c.get(G).get(bh).i32(2).i32Shl().i32Sub().set(G);
  c.get(DZ).get(bh).i32(2).i32Shl().i32Sub().set(DZ);
  c.get(t).i32(1).i32Add().set(t);
  c.br(0).end().end();
  // With `weights`, the weight gradients over the n·B rows (at most KC_TN of them: one block of matmulTN2's sum), as
  // matmulTN2 sums them: dW (I + H, 4H) += [xᵀ; h_{t−1}ᵀ]·dz, each entry from zero in row order, then added; then
  // dBias += dz's column sums.
  c.get(WEIGHTS).i32Eqz().brIf(0); // (the function's outermost block: return)
  // xᵀ's rows (I of them): element (i, r) at x + r·I·w + i·w
  c.get(I).get(gw).i32(5).i32ShrS().get(N).get(B).i32Mul().get(X).i32(w).get(I).i32(w).i32Mul()
    .get(dz0).i32(32).get(gw).get(DW).get(gw).i32(1).i32(0);
  c.call(f64 ? ROWS64 : ROWS32);
  // h_{t−1}ᵀ's rows (H of them), into dW's rows I … I + H − 1
  c.get(H).get(gw).i32(5).i32ShrS().get(N).get(B).i32Mul().get(HP).i32(w).get(hw)
    .get(dz0).i32(32).get(gw).get(DW).get(I).get(gw).i32Mul().i32Add().get(gw).i32(1).i32(0);
  c.call(f64 ? ROWS64 : ROWS32);
  c.block();
  c.get(DB).i32Eqz().brIf(0);
  c.get(N).get(B).i32Mul().get(H).i32(2).i32Shl().get(dz0).get(H).i32(2).i32Shl().get(DB).call(f64 ? SUM_ROWS64 : SUM_ROWS32);
  c.end();
  return { name: f64 ? "backward" : "backward32", params, results: [], code: c };
}

/** The module's bytes: the kernels the loops call (rows, gates, their backward, Rᵀ's packing), then the loops. */
export function stepsModule(memory: { pages: number; maxPages?: number; shared?: boolean }, fused = false): Uint8Array {
  return assemble([
    rows(8, fused), rows(4, fused), gatesForward(), gatesForward32(fused), gatesBackward(8), gatesBackward(4), pack(8, true), packT32(),
    biasRows(8, false), biasRows(4, false), biasRows(8, true), biasRows(4, true), pack(8, false), pack(4, false),
    forward(8), forward(4), backward(8), backward(4),
  ], memory);
}
