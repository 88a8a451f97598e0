/**
 * One GRU step's gate math in WebAssembly SIMD (resetAfter, σ gates: Keras 3's and PyTorch's default GRU), forward
 * and backward, for `gruGatesForward` and `gruGatesBackward` in src/tensor/gru-gates.ts.
 *
 * Legend: B batch rows, H units, G = 3H gate columns in Keras order z, r, h. Per row: gx (G) holds x·W + b_x and
 * is overwritten with the activations z, r, ĥ; gu (G) holds h·U + b_h; hPrev and hNext (H) are h_{t−1} and h_t.
 *
 *   z = σ(gx_z + gu_z), r = σ(gx_r + gu_r), ĥ = tanh(gx_h + r ⊙ gu_h), h_t = z ⊙ h_{t−1} + (1 − z) ⊙ ĥ
 *
 * Float64 (f64x2): the TypeScript loop's operations in its order, with fastSigmoid and fastTanh two lanes at a time
 * (vector-math.ts), so bit-identical to it. σ of an input below −708 is `math.exp` there, which this does not
 * compute: each row's σ inputs are looked at first, and a row that has one ends the call, its rows before written,
 * it not (the kernel returns its index: the caller runs that row in TypeScript and calls again from the next).
 *
 * Float32 (f32x4): float32 arithmetic four lanes at a time, as the LSTM's float32 kernel (gates.ts): σ within 2 and
 * tanh within 3 float32 ulps, the sums and the mix rounded at each operation where the TypeScript loop computes in
 * float64 and rounds where it stores (test/wasm-gru.test.ts). It never declines.
 *
 * H must be even (pairs of units; float32's last two units of H ≡ 2 mod 4 go as a half vector); the caller keeps
 * odd H in TypeScript, and hardSigmoid gates too.
 */
import { Code, I32, V128, assemble, type FunctionDef } from "./assembler.js";
import { type Phases, F32x4Math, F64x2Math, f32Regs, f64Regs, halfTail, sideBySide } from "./vector-math.js";

/**
 * Vectors of units handled side by side per pass of a loop, each with its own working locals: each vector's chain
 * (a σ; or a tanh and the mix) is long and serial. Measured per unit (CPU time, medians of 9 interleaved
 * rounds at S2–S4's B and H, on the Zen 3 machine while other jobs ran), float64 | float32: the row in one pass of
 * all three per vector, four side by side, 28.7–29.3 | 13.7–14.7 ns; in two passes (gruPasses), one vector at a
 * time 27.0 | 16.3–16.6, two 23.4–24.0 | 14.0–14.1, four 20.9–22.5 | 11.9–12.8, six or eight no better
 * (21.8–24.5 | 12.5–14.1). (The LSTM's kernels, 3 σ and 2 tanh per unit where this has 2 and 1, beside them:
 * 30.4–32.9 | 15.2–16.5.)
 */
const SETS = 4;

/**
 * The row loop both forward kernels share: for b in [0, B), the row's byte offsets in gx by block (z, r, h: gz, gr,
 * gh), in gu (uz, and uh for the h block) and in hPrev and hNext; then body(), which has p and end for its loops.
 */
function forwardRows(
  c: Code, w: 4 | 8, prm: { B: number; H: number; gx: number; gu: number; hp: number; hn: number },
  body: (at: { p: number; end: number; hw: number; gz: number; gr: number; gh: number; uz: number; uh: number; hpb: number; hnb: number; b: number }) => void,
): void {
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), hw = c.local(I32), gw = c.local(I32);
  const gz = c.local(I32), gr = c.local(I32), gh = c.local(I32), uz = c.local(I32), uh = c.local(I32);
  const hpb = c.local(I32), hnb = c.local(I32);
  c.get(prm.H).i32(w === 8 ? 3 : 2).i32Shl().set(hw); // a row of h: H·w bytes
  c.get(hw).i32(3).i32Mul().set(gw);                    // a row of the gates: 3H·w
  c.i32(0).set(b);
  c.block().loop();
  c.get(b).get(prm.B).i32GeS().brIf(1);
  c.get(prm.gx).get(b).get(gw).i32Mul().i32Add().tee(gz).get(hw).i32Add().tee(gr).get(hw).i32Add().set(gh);
  c.get(prm.gu).get(b).get(gw).i32Mul().i32Add().tee(uz).get(hw).i32(1).i32Shl().i32Add().set(uh);
  c.get(prm.hp).get(b).get(hw).i32Mul().i32Add().set(hpb);
  c.get(prm.hn).get(b).get(hw).i32Mul().i32Add().set(hnb);
  body({ p, end, hw, gz, gr, gh, uz, uh, hpb, hnb, b });
  c.get(b).i32(1).i32Add().set(b);
  c.br(0).end().end();
}

/**
 * The phases of a row's two passes (both forward kernels), the vector at byte p + o of the pass: `sig`, σ in place
 * over the z and r blocks ([0, 2H) of gx, the sums x + h made as they load); then `cell`, over the h block:
 * ĥ = tanh(x_h + r·h_h) in place and h_t = z·h_{t−1} + (1 − z)·ĥ. `g()` names the working locals in effect: x the σ
 * and tanh input (σ's result), t tanh's, zs z and then h_t.
 */
function gruPasses(
  c: Code, at: { p: number; gz: number; gr: number; gh: number; uz: number; uh: number; hpb: number; hnb: number },
  ops: { load(o: number): void; store(v: number, o: number): void; mul(): void; add(): void; sub(): void; one: number; sigmoid(): void; tanh(): void },
  g: () => { x: number; t: number; zs: number },
): { sig: Phases; cell: Phases } {
  const { p } = at;
  const from = (base: number, o: number): void => { c.get(base).get(p).i32Add(); ops.load(o); };
  const sig: Phases = {
    load: (o) => { from(at.gz, o); from(at.uz, o); ops.add(); c.set(g().x); },
    compute: () => ops.sigmoid(),
    store: (o) => { c.get(at.gz).get(p).i32Add(); ops.store(g().x, o); },
  };
  const cell: Phases = {
    load: (o) => { from(at.gh, o); from(at.gr, o); from(at.uh, o); ops.mul(); ops.add(); c.set(g().x); }, // x_h + r·h_h
    compute: () => ops.tanh(),
    store: (o) => {
      const v = g();
      c.get(at.gh).get(p).i32Add(); ops.store(v.t, o);
      // h = z·hPrev + (1 − z)·ĥ, into zs
      from(at.gz, o); c.set(v.zs);
      c.get(v.zs); from(at.hpb, o); ops.mul();
      c.get(ops.one).get(v.zs); ops.sub(); c.get(v.t); ops.mul(); ops.add(); c.set(v.zs);
      c.get(at.hnb).get(p).i32Add(); ops.store(v.zs, o);
    },
  };
  return { sig, cell };
}

/**
 * The forward step for float64 arrays. Parameters: B, H, gx, gu, hPrev, hNext, tables (byte offsets); the result
 * is the number of rows done: B, or the index of the first row with a σ input below −708 (not written).
 */
export function gruForward(): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32, I32] as const;
  const B = 0, H = 1, GX = 2, GU = 3, HP = 4, HN = 5, TAB = 6;
  const c = new Code(params);
  const bad = c.local(V128);
  const RS = Array.from({ length: SETS }, () => ({ ...f64Regs(c), zs: c.local(V128) }));
  let g = RS[0]!;
  const use = (n: number): void => { g = RS[n]!; };
  const vm = new F64x2Math(c, TAB);
  const ops = {
    load: (o: number) => { c.v128Load(o); }, store: (v: number, o: number) => { c.get(v).v128Store(o); },
    mul: () => { c.f64x2Mul(); }, add: () => { c.f64x2Add(); }, sub: () => { c.f64x2Sub(); }, one: vm.one,
    sigmoid: () => vm.sigmoid(g), tanh: () => vm.tanh(g),
  };
  forwardRows(c, 8, { B, H, gx: GX, gu: GU, hp: HP, hn: HN }, (at) => {
    const { p, end } = at;
    // σ's inputs of the row (z and r blocks, [0, 2H)) below −708? Then the row is the caller's.
    c.f64(0).f64x2Splat().set(bad);
    c.i32(0).set(p);
    c.get(at.hw).i32(1).i32Shl().set(end);
    c.block().loop();
    c.get(p).get(end).i32GeS().brIf(1);
    c.get(at.gz).get(p).i32Add().v128Load().get(at.uz).get(p).i32Add().v128Load().f64x2Add();
    vm.belowCut(); c.get(bad).v128Or().set(bad);
    c.get(p).i32(16).i32Add().set(p);
    c.br(0).end().end();
    c.block();
    c.get(bad).v128AnyTrue().i32Eqz().brIf(0);
    c.get(at.b).return();
    c.end();
    const ps = gruPasses(c, at, ops, () => g);
    sideBySide(c, p, end, () => c.i32(0), () => c.get(at.hw).i32(1).i32Shl(), ps.sig, SETS, use);
    sideBySide(c, p, end, () => c.i32(0), () => c.get(at.hw), ps.cell, SETS, use);
  });
  c.get(B);
  return { name: "gru", params, results: [I32], code: c };
}

/**
 * The forward step for float32 arrays, in float32 arithmetic (`fused`: relaxed SIMD's multiply-adds in σ and tanh,
 * as a model with `fma: true` has them). Parameters: B, H, gx, gu, hPrev, hNext (byte offsets); returns B.
 */
export function gruForward32(fused = false): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32] as const;
  const B = 0, H = 1, GX = 2, GU = 3, HP = 4, HN = 5;
  const c = new Code(params);
  const RS = Array.from({ length: SETS }, () => ({ ...f32Regs(c), zs: c.local(V128) }));
  let g = RS[0]!;
  const use = (n: number): void => { g = RS[n]!; };
  const vm = new F32x4Math(c, fused);
  let half = false; // the last two units of a row when H ≡ 2 (mod 4)
  const ops = {
    load: (o: number) => { if (half) c.v128Load64Zero(o); else c.v128Load(o); },
    store: (v: number, o: number) => { c.get(v); if (half) c.v128Store64Lane(0, o); else c.v128Store(o); },
    mul: () => { c.f32x4Mul(); }, add: () => { c.f32x4Add(); }, sub: () => { c.f32x4Sub(); }, one: vm.one,
    sigmoid: () => vm.sigmoid(g), tanh: () => vm.tanh(g),
  };
  forwardRows(c, 4, { B, H, gx: GX, gu: GU, hp: HP, hn: HN }, (at) => {
    const { p, end } = at;
    const rest = (ph: Phases) => () => halfTail(c, p, end, (on) => { half = on; }, () => { ph.load(0); ph.compute(); ph.store(0); });
    const ps = gruPasses(c, at, ops, () => g);
    // (2H float32 units are whole vectors: H is even)
    sideBySide(c, p, end, () => c.i32(0), () => c.get(at.hw).i32(1).i32Shl(), ps.sig, SETS, use);
    sideBySide(c, p, end, () => c.i32(0), () => c.get(at.hw), ps.cell, SETS, use, rest(ps.cell));
  });
  c.get(B);
  return { name: "gru32", params, results: [I32], code: c };
}

/**
 * The backward of one step's gate math (resetAfter, σ gates), `gruGatesBackward`'s loop in the same operations and
 * order: from d = dL/dh_t and the activations forward saved,
 *   dzp = d·(hPrev − ĥ)·(z·(1 − z)), dĥp = d·(1 − z)·(1 − ĥ²), drp = dĥp·gu_h·(r·(1 − r)),
 *   dX = [dzp, drp, dĥp], dU = [dzp, drp, dĥp·r], and dh replaced by d·z (the mix's own path to h_{t−1}).
 * Float64: two units at a time, bit-identical. Float32: four at a time in float32 arithmetic (a half vector for the
 * last two of H ≡ 2 mod 4), rounding at each operation. Parameters: B, H, gx, gu, hPrev, dh, dX, dU (byte offsets;
 * gx, gu, dX, dU rows of 3H, hPrev and dh of H). No transcendentals, but worth its kernel: per unit at S2–S4's B and
 * H (CPU time, medians of 9 interleaved rounds, the Zen 3 machine) 5.4–6.8 ns in float64 and 3.1–3.4 in float32,
 * where the TypeScript loop took 27–30. (Row pointers per block kept in locals, rather than added up per vector,
 * were no faster.)
 */
export function gruBackward(w: 4 | 8): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32, I32, I32] as const;
  const B_ = 0, H_ = 1, GX = 2, GU = 3, HP = 4, DH = 5, DX = 6, DU = 7;
  const f64 = w === 8;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), hw = c.local(I32), gw = c.local(I32);
  const go = c.local(I32), so = c.local(I32); // row b's byte offsets in the (B, 3H) and (B, H) arrays
  const d = c.local(V128), z = c.local(V128), r = c.local(V128), ch = c.local(V128), dzp = c.local(V128), dcp = c.local(V128);
  const one = c.local(V128);
  if (f64) c.f64(1).f64x2Splat().set(one); else c.f32(1).f32x4Splat().set(one);
  let half = false;
  const load = (): void => { if (f64 || !half) c.v128Load(); else c.v128Load64Zero(); };
  /** Stores the vector on the stack at the address below it. */
  const store = (): void => { if (f64 || !half) c.v128Store(); else c.v128Store64Lane(0); };
  const mul = (): void => { if (f64) c.f64x2Mul(); else c.f32x4Mul(); };
  const sub = (): void => { if (f64) c.f64x2Sub(); else c.f32x4Sub(); };
  /** The address of block k (0 z, 1 r, 2 h) of the gates' row in `arr`, at unit p. */
  const gate = (arr: number, k: number): void => { c.get(arr).get(go).i32Add().get(p).i32Add(); if (k) c.get(hw).i32(k).i32Mul().i32Add(); };
  const state = (arr: number): void => { c.get(arr).get(so).i32Add().get(p).i32Add(); };
  const body = (): void => {
    state(DH); load(); c.set(d);
    gate(GX, 0); load(); c.set(z);
    gate(GX, 1); load(); c.set(r);
    gate(GX, 2); load(); c.set(ch);
    // dzp = d·(hPrev − ĥ)·(z·(1 − z))
    c.get(d); state(HP); load(); c.get(ch); sub(); mul(); c.get(z).get(one).get(z); sub(); mul(); mul(); c.set(dzp);
    // dĥp = d·(1 − z)·(1 − ĥ²)
    c.get(d).get(one).get(z); sub(); mul(); c.get(one).get(ch).get(ch); mul(); sub(); mul(); c.set(dcp);
    gate(DX, 0); c.get(dzp); store();
    gate(DU, 0); c.get(dzp); store();
    gate(DX, 2); c.get(dcp); store();
    gate(DU, 2); c.get(dcp).get(r); mul(); store();
    // drp = dĥp·gu_h·(r·(1 − r)), into dzp
    c.get(dcp); gate(GU, 2); load(); mul(); c.get(r).get(one).get(r); sub(); mul(); mul(); c.set(dzp);
    gate(DX, 1); c.get(dzp); store();
    gate(DU, 1); c.get(dzp); store();
    state(DH); c.get(d).get(z); mul(); store(); // the mix's own path: d·z
  };
  c.get(H_).i32(f64 ? 3 : 2).i32Shl().set(hw);
  c.get(hw).i32(3).i32Mul().set(gw);
  c.i32(0).set(b);
  c.block().loop();
  c.get(b).get(B_).i32GeS().brIf(1);
  c.get(b).get(gw).i32Mul().set(go);
  c.get(b).get(hw).i32Mul().set(so);
  c.i32(0).set(p);
  c.get(hw).set(end);
  c.block().loop(); // p walks the row's units, 16 bytes (two float64 or four float32) a pass
  c.get(p).i32(16).i32Add().get(end).i32GtS().brIf(1);
  body();
  c.get(p).i32(16).i32Add().set(p);
  c.br(0).end().end();
  if (!f64) halfTail(c, p, end, (on) => { half = on; }, body); // two float32 units left
  c.get(b).i32(1).i32Add().set(b);
  c.br(0).end().end();
  return { name: f64 ? "gruBack" : "gruBack32", params, results: [], code: c };
}

/** The module's bytes (the four kernels), for a shared memory of at most `maxPages` pages, or a plain one of `pages`. */
export function gruModule(memory: { pages: number; maxPages?: number; shared?: boolean }, fused = false): Uint8Array {
  return assemble([gruForward(), gruForward32(fused), gruBackward(8), gruBackward(4)], memory);
}
