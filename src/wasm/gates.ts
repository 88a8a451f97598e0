/**
 * One LSTM step's gate math in WebAssembly SIMD. σ on i, f, o and tanh on g, in place over z (B, 4H); then
 * c = f ⊙ cPrev + i ⊙ g, tanhC = tanh(c), h = o ⊙ tanhC. (σ and tanh themselves are emitted by vector-math.ts,
 * which the GRU's kernels in gru-gates.ts share.)
 *
 * Float64 (f64x2): the same computation as `lstmGatesForward` in src/tensor/lstm-gates.ts for σ gates, operation
 * for operation, so that the results are bit-identical to it: `fastSigmoid` and `fastTanh` two lanes at a time.
 *
 * Float32 (f32x4, `gatesForward32`): float32 arithmetic four lanes at a time with no tables, within a few
 * float32 ulps of the true values rather than bit-identical to the TypeScript kernel (which computes in float64
 * and rounds where it stores); it ran the gate step ~2× faster than widening to float64 did. Fused (a model with
 * `fma: true`, `gatesModule(…, true)`), its exp's range reduction and polynomial add with relaxed SIMD's
 * multiply-add: within the same ulp bounds (test/wasm.test.ts), and 0.85–0.89× the unfused kernel's time per unit
 * from B = 1, H = 10 to B = 64, H = 256 (paired in one process, the Zen 3 machine).
 *
 * In float64, σ of an input below -708 takes `math.exp` there (a subnormal result); the kernel looks for such
 * inputs first and returns 1 without writing anything, and the caller then runs the TypeScript kernel on the
 * step. H must be even (pairs of units); the caller keeps odd H on the TypeScript kernel.
 */
import { Code, I32, V128, assemble, type FunctionDef } from "./assembler.js";
import { type F32Regs, type F64Regs, type Phases, F32x4Math, F64x2Math, f32Regs, halfTail, sideBySide } from "./vector-math.js";

// Parameters: B, H, z, cPrev, c, tanhC, h (byte offsets), tables (byte offset). Result: 0 done, 1 not done.
const B_ = 0, H_ = 1, Z = 2, CP = 3, C = 4, TC = 5, HH = 6, TAB = 7;

/**
 * One row's gate blocks in Keras order (i, f, g, o in z): σ over i and f, then over o, tanh over g, then the cell
 * over the i block's units. `zAt(k)` puts the address of block k on the stack; `loop` runs phases over [from, to).
 */
function gateBlocks(
  zAt: (block: number) => () => void, loop: (from: () => void, to: () => void, ph: Phases) => void,
  ph: { sig: Phases; tnh: Phases; cell: Phases },
): void {
  loop(zAt(0), zAt(2), ph.sig); // i, f
  loop(zAt(3), zAt(4), ph.sig); // o
  loop(zAt(2), zAt(3), ph.tnh); // g
  loop(zAt(0), zAt(1), ph.cell);
}

/** The address of gate block k (0 … 4) of the row at zb, as gateBlocks takes it: zb + k·hw (hw = H·w bytes). */
function blockAt(c: Code, zb: number, hw: number): (k: number) => () => void {
  return (k) => () => { c.get(zb); if (k) c.get(hw).i32(k).i32Mul().i32Add(); };
}

/** for b in [0, B): zb = z + b·4H·w, sb = b·H·w (hw = H·w bytes); body() */
function eachRow(c: Code, b: number, B: number, z: number, hw: number, zb: number, sb: number, body: () => void): void {
  c.i32(0).set(b);
  c.block().loop();
  c.get(b).get(B).i32GeS().brIf(1);
  c.get(z).get(b).get(hw).i32(4).i32Mul().i32Mul().i32Add().set(zb);
  c.get(b).get(hw).i32Mul().set(sb);
  body();
  c.get(b).i32(1).i32Add().set(b);
  c.br(0).end().end();
}

/**
 * The phases of a step, shared by both forward kernels: σ and tanh in place over a block of z at p + o (bytes),
 * and the cell's c = f·cPrev + i·g, tanh(c), h = o·tanh(c), for the units at p + o of the i block; f, g, o at
 * p + H, + 2H, + 3H (hw bytes), the states at sb + (p − zb) + o. `r()` names the working locals in effect (the
 * kernels swap between sets): cv holds c, x the activations' input, t tanh's output, tcv tanh(c), tmp h. Parameter
 * locals: cPrev, c, tanhC, h (byte offsets).
 */
function stepPhases(
  c: Code, at: { p: number; hw: number; zb: number; sb: number; cPrev: number; c: number; tanhC: number; h: number },
  ops: { load(o: number): void; store(v: number, o: number): void; mul(): void; add(): void; sigmoid(): void; tanh(): void },
  r: () => { cv: number; x: number; t: number; tcv: number; tmp: number },
): { sig: Phases; tnh: Phases; cell: Phases } {
  const { p, hw, zb, sb } = at;
  // σ and tanh in place over a block of z: x in, σ's result in x, tanh's in t.
  const sig: Phases = {
    load: (o) => { c.get(p); ops.load(o); c.set(r().x); },
    compute: () => ops.sigmoid(),
    store: (o) => { c.get(p); ops.store(r().x, o); },
  };
  const tnh: Phases = {
    load: (o) => { c.get(p); ops.load(o); c.set(r().x); },
    compute: () => ops.tanh(),
    store: (o) => { c.get(p); ops.store(r().t, o); },
  };
  const off = (): void => { c.get(p).get(zb).i32Sub().get(sb).i32Add(); }; // (b·H + j)·w, less o
  const cell: Phases = {
    load: (o) => {
      const { cv, x } = r();
      c.get(p).get(hw).i32Add(); ops.load(o); // f
      off(); c.get(at.cPrev).i32Add(); ops.load(o);
      ops.mul();
      c.get(p); ops.load(o); // i
      c.get(p).get(hw).i32(2).i32Mul().i32Add(); ops.load(o); // g
      ops.mul(); ops.add(); c.set(cv);
      c.get(cv).set(x);
    },
    compute: () => { ops.tanh(); const { t, tcv } = r(); c.get(t).set(tcv); },
    store: (o) => {
      const { cv, tcv, tmp } = r();
      off(); c.get(at.c).i32Add(); ops.store(cv, o);
      off(); c.get(at.tanhC).i32Add(); ops.store(tcv, o);
      off(); c.get(at.h).i32Add(); // h = o·tanh(c)
      c.get(p).get(hw).i32(3).i32Mul().i32Add(); ops.load(o);
      c.get(tcv); ops.mul(); c.set(tmp);
      ops.store(tmp, o);
    },
  };
  return { sig, tnh, cell };
}

/** The step's kernel for float64 arrays (`gatesForward32` is float32's). */
export function gatesForward(): FunctionDef {
  const PAIRS = 4;
  const w = 8;
  const params = [I32, I32, I32, I32, I32, I32, I32, I32] as const;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), zb = c.local(I32), sb = c.local(I32), hw = c.local(I32);
  const bad = c.local(V128);
  /**
   * The working locals of one pair's σ or tanh and its cell (cv holds c, tcv tanh(c)), in PAIRS sets: the loops
   * take PAIRS pairs per pass, because each pair's chain is long and serial. Two side by side ran the step ~20%
   * faster than one pair per pass; four, per unit at B = 32, H = 256 and B = 64, H = 128 (interleaved runs):
   * 11.3–13.2 ns where two took 12.3–14.4.
   */
  const regs = (): F64Regs & { cv: number; tcv: number } => ({
    x: c.local(V128), y: c.local(V128), nf: c.local(V128), r: c.local(V128), q: c.local(V128), tv: c.local(V128),
    pv: c.local(V128), ni: c.local(V128), t: c.local(V128), cv: c.local(V128), tcv: c.local(V128),
    ci: c.local(V128), m: c.local(V128), e: c.local(V128),
  });
  const RS = Array.from({ length: PAIRS }, regs);
  let g = RS[0]!;
  /** Makes set n the working locals. */
  const use = (n: number): void => { g = RS[n]!; };
  const vm = new F64x2Math(c, TAB);

  /** Two values at the address on the stack, plus `off` bytes. */
  const load = (off = 0): void => { c.v128Load(off); };
  /** Stores `v` at the address on the stack, plus `off` bytes. */
  const store = (v: number, off = 0): void => { c.get(v).v128Store(off); };

  /** for (p = from; p < to; p += 2w) body() — pointers in bytes */
  const pairs = (from: () => void, to: () => void, body: () => void): void => {
    from(); c.set(p);
    to(); c.set(end);
    c.block().loop();
    c.get(p).get(end).i32GeS().brIf(1);
    body();
    c.get(p).i32(2 * w).i32Add().set(p);
    c.br(0).end().end();
  };
  const phased = (from: () => void, to: () => void, ph: Phases): void => sideBySide(c, p, end, from, to, ph, PAIRS, use);
  const rows = (body: () => void): void => eachRow(c, b, B_, Z, hw, zb, sb, body);
  const zAt = blockAt(c, zb, hw);

  c.get(H_).i32(3).i32Shl().set(hw); // bytes per H values
  // First, any σ input below -708? Then nothing is written and the caller runs the TypeScript kernel.
  c.f64(0).f64x2Splat().set(bad);
  const scan = (): void => { c.get(p); load(); vm.belowCut(); c.get(bad).v128Or().set(bad); };
  rows(() => {
    pairs(zAt(0), zAt(2), scan);
    pairs(zAt(3), zAt(4), scan);
  });
  c.block();
  c.get(bad).v128AnyTrue().i32Eqz().brIf(0);
  c.i32(1).return();
  c.end();

  rows(() => {
    // Each handles the pair at p + o (bytes) with the current set of locals.
    gateBlocks(zAt, phased, stepPhases(c, { p, hw, zb, sb, cPrev: CP, c: C, tanhC: TC, h: HH },
      { load, store, mul: () => c.f64x2Mul(), add: () => c.f64x2Add(), sigmoid: () => vm.sigmoid(g), tanh: () => vm.tanh(g) },
      () => ({ cv: g.cv, x: g.x, t: g.t, tcv: g.tcv, tmp: g.y })));
  });
  c.i32(0);
  return { name: "gates", params, results: [I32], code: c };
}

/**
 * One step's σ-gate math for float32 arrays, in float32 arithmetic, four units at a time (f32x4): twice the
 * lanes of the float64 kernel and no table lookups, so not bit-identical to the TypeScript kernel (which
 * computes in float64 and rounds at each store) but within a few float32 ulps of the true values (the bounds are
 * in test/wasm.test.ts, over the whole float32 range). Parameters: B, H, z, cPrev, c, tanhC, h (byte offsets);
 * returns 0 (it never declines). H must be even: the last two units of a block of H ≡ 2 (mod 4) go as a half vector.
 *
 * σ and tanh are F32x4Math's (vector-math.ts, which says how they are computed).
 */
export function gatesForward32(fused = false): FunctionDef {
  const QUADS = 4;
  const params = [I32, I32, I32, I32, I32, I32, I32] as const;
  const B_ = 0, H_ = 1, Z = 2, CP = 3, C = 4, TC = 5, HH = 6;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), zb = c.local(I32), sb = c.local(I32), hw = c.local(I32);
  /**
   * One quad's working locals (its σ or tanh, and the cell's c in cv, tanh(c) in tcv), in QUADS sets: the loops
   * take QUADS quads per pass, side by side, because each quad's chain is serial (Horner's polynomial, then a
   * division). Measured per unit at B = 32, H = 256 (and S2, S3 alike): one quad per pass 7.3 ns, two 6.4, four
   * 5.4, six or eight ~5.0 but slower where H is small.
   */
  const regs = (): F32Regs & { cv: number; tcv: number } => ({ ...f32Regs(c), cv: c.local(V128), tcv: c.local(V128) });
  const RS = Array.from({ length: QUADS }, regs);
  let g = RS[0]!;
  /** Makes set n the working locals. */
  const use = (n: number): void => { g = RS[n]!; };
  const vm = new F32x4Math(c, fused);

  /** Four values at the address on the stack (two, in the half vector at the end of an odd number of pairs). */
  let half = false;
  const load = (off = 0): void => { if (half) c.v128Load64Zero(off); else c.v128Load(off); };
  const store = (v: number, off = 0): void => { c.get(v); if (half) c.v128Store64Lane(0, off); else c.v128Store(off); };

  /** The last two units of a block (H ≡ 2 mod 4), as a half vector. */
  const halfVector = (ph: Phases): (() => void) => () => halfTail(c, p, end, (on) => { half = on; }, () => { ph.load(0); ph.compute(); ph.store(0); });
  const quads = (from: () => void, to: () => void, ph: Phases): void =>
    sideBySide(c, p, end, from, to, ph, QUADS, use, halfVector(ph));
  const zAt = blockAt(c, zb, hw);

  c.get(H_).i32(2).i32Shl().set(hw); // bytes per H values
  eachRow(c, b, B_, Z, hw, zb, sb, () => {
    gateBlocks(zAt, quads, stepPhases(c, { p, hw, zb, sb, cPrev: CP, c: C, tanhC: TC, h: HH },
      { load, store, mul: () => c.f32x4Mul(), add: () => c.f32x4Add(), sigmoid: () => vm.sigmoid(g), tanh: () => vm.tanh(g) },
      () => ({ cv: g.cv, x: g.x, t: g.t, tcv: g.tcv, tmp: g.a })));
  });
  c.i32(0);
  return { name: "gates32", params, results: [I32], code: c };
}

/**
 * The backward of one step's σ-gate math (`lstmGatesBackward` in kernels.ts), the same operations in the same
 * order. Float64: two units at a time, so bit-identical to it. Float32: four units at a time in float32
 * arithmetic (the TypeScript kernel rounds only where it stores), so within float32 rounding of it; the last two
 * units of an H ≡ 2 (mod 4) go as a half vector. Parameters: B, H, gates, cPrev, tanhC, dh, dc, dz (byte
 * offsets): dz (B, 4H) is written, dc (B, H) replaced by dL/dc_{t-1}. No transcendentals: every derivative
 * comes from the activations forward saved. H must be even.
 */
export function gatesBackward(w: 4 | 8): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32, I32, I32] as const;
  const B_ = 0, H_ = 1, G_ = 2, CP_ = 3, TC_ = 4, DH_ = 5, DC_ = 6, DZ_ = 7;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), gb = c.local(I32), zb = c.local(I32), sb = c.local(I32), hw = c.local(I32);
  const s = c.local(I32);
  const ig = c.local(V128), fg = c.local(V128), gg = c.local(V128), og = c.local(V128), tc = c.local(V128), dh = c.local(V128);
  const dcv = c.local(V128), one = c.local(V128);
  const f64 = w === 8;
  if (f64) c.f64(1).f64x2Splat().set(one); else c.f32(1).f32x4Splat().set(one);
  let half = false; // float32: the half vector at the end of a row
  const load = (): void => { if (f64 || !half) c.v128Load(); else c.v128Load64Zero(); };
  /** Stores the vector on the stack at the address below it. */
  const store = (): void => { if (f64 || !half) c.v128Store(); else c.v128Store64Lane(0); };
  const mul = (): void => { if (f64) c.f64x2Mul(); else c.f32x4Mul(); };
  const add = (): void => { if (f64) c.f64x2Add(); else c.f32x4Add(); };
  const sub = (): void => { if (f64) c.f64x2Sub(); else c.f32x4Sub(); };
  /** Units at p (w·lanes bytes of each block): the whole computation. */
  const body = (): void => {
    c.get(p).get(G_).i32Sub().get(gb).i32Sub().get(sb).i32Add().set(s); // (b·H + j)·w
    c.get(p); load(); c.set(ig);
    c.get(p).get(hw).i32Add(); load(); c.set(fg);
    c.get(p).get(hw).i32(2).i32Mul().i32Add(); load(); c.set(gg);
    c.get(p).get(hw).i32(3).i32Mul().i32Add(); load(); c.set(og);
    c.get(TC_).get(s).i32Add(); load(); c.set(tc);
    c.get(DH_).get(s).i32Add(); load(); c.set(dh);
    // dcv = dc + dh·o·(1 − tanh²(c))
    c.get(DC_).get(s).i32Add(); load();
    c.get(dh).get(og); mul(); c.get(one).get(tc).get(tc); mul(); sub(); mul(); add(); c.set(dcv);
    // the four gate blocks of dz, at zb + (p − G − gb) + k·H
    const dzAt = (k: number): void => { c.get(zb).get(p).get(G_).i32Sub().get(gb).i32Sub().i32Add(); if (k) c.get(hw).i32(k).i32Mul().i32Add(); };
    dzAt(0); c.get(dcv).get(gg); mul(); c.get(ig); mul(); c.get(one).get(ig); sub(); mul(); store(); // dcv·g·i·(1 − i)
    dzAt(1); c.get(dcv).get(CP_).get(s).i32Add(); load(); mul(); c.get(fg); mul(); c.get(one).get(fg); sub(); mul(); store(); // dcv·cPrev·f·(1 − f)
    dzAt(2); c.get(dcv).get(ig); mul(); c.get(one).get(gg).get(gg); mul(); sub(); mul(); store(); // dcv·i·(1 − g²)
    dzAt(3); c.get(dh).get(tc); mul(); c.get(og); mul(); c.get(one).get(og); sub(); mul(); store(); // dh·tanh(c)·o·(1 − o)
    c.get(DC_).get(s).i32Add().get(dcv).get(fg); mul(); store(); // dL/dc_{t-1} = dcv·f
  };
  c.get(H_).i32(f64 ? 3 : 2).i32Shl().set(hw);
  c.i32(0).set(b);
  c.block().loop();
  c.get(b).get(B_).i32GeS().brIf(1);
  c.get(b).get(hw).i32(4).i32Mul().i32Mul().set(gb); // row b of gates and dz: b·4H values in
  c.get(G_).get(gb).i32Add().set(p);
  c.get(DZ_).get(gb).i32Add().set(zb);
  c.get(b).get(hw).i32Mul().set(sb); // row b of the (B, H) arrays
  c.get(p).get(hw).i32Add().set(end);
  c.block().loop(); // p walks the i block of row b, 16 bytes (two float64 or four float32 units) a pass
  c.get(p).i32(16).i32Add().get(end).i32GtS().brIf(1);
  body();
  c.get(p).i32(16).i32Add().set(p);
  c.br(0).end().end();
  if (!f64) halfTail(c, p, end, (on) => { half = on; }, body); // two float32 units left
  c.get(b).i32(1).i32Add().set(b);
  c.br(0).end().end();
  return { name: f64 ? "gatesBack" : "gatesBack32", params, results: [], code: c };
}

/**
 * The bias kernels, the same operations in the same order as `addBiasRows` and `sumRowsInto` in kernels.ts:
 * Y (M, N) += bias by rows, and dBias += the column sums of dY (M, N), four rows per pass as
 * ((y0 + y1) + (y2 + y3)), then one row at a time. Float64: two columns at a time, bit-identical. Float32: four
 * columns at a time in float32 arithmetic (a half vector for the last two of N ≡ 2 mod 4): Y += bias is one
 * rounding either way, so bit-identical too; the sums round at each addition where TypeScript rounds at the
 * store. Parameters: M, N, y, ldy (elements), bias (byte offsets). N must be even.
 */
export function biasRows(w: 4 | 8, sum: boolean): FunctionDef {
  const params = [I32, I32, I32, I32, I32] as const;
  const M_ = 0, N_ = 1, Y_ = 2, LD_ = 3, BI_ = 4, sh = w === 8 ? 3 : 2, f64 = w === 8;
  const c = new Code(params);
  const i = c.local(I32), j = c.local(I32), row = c.local(I32), ld = c.local(I32), nb = c.local(I32), m4 = c.local(I32);
  const v = c.local(V128);
  let half = false; // float32: the last two columns
  const load = (): void => { if (f64 || !half) c.v128Load(); else c.v128Load64Zero(); };
  const store = (): void => { if (f64 || !half) c.v128Store(); else c.v128Store64Lane(0); };
  const add = (): void => { if (f64) c.f64x2Add(); else c.f32x4Add(); };
  c.get(LD_).i32(sh).i32Shl().set(ld);
  c.get(N_).i32(sh).i32Shl().set(nb);
  c.get(M_).i32(-4).i32And().set(m4); // rows in passes of four (sum) — every row, for add
  /** for (j = 0; j + 16 ≤ N·w; j += 16) body() over the row starting at `row`, then (float32) the half vector left */
  const cols = (body: () => void): void => {
    c.i32(0).set(j);
    c.block().loop();
    c.get(j).i32(16).i32Add().get(nb).i32GtS().brIf(1);
    body();
    c.get(j).i32(16).i32Add().set(j);
    c.br(0).end().end();
    if (!f64) halfTail(c, j, nb, (on) => { half = on; }, body);
  };
  const at = (r: number): void => { c.get(row).get(j).i32Add(); if (r) c.get(ld).i32(r).i32Mul().i32Add(); };
  c.i32(0).set(i);
  if (sum) {
    c.block().loop();
    c.get(i).get(m4).i32GeS().brIf(1);
    c.get(Y_).get(i).get(ld).i32Mul().i32Add().set(row);
    cols(() => {
      c.get(BI_).get(j).i32Add(); // dBias[j] = dBias[j] + ((y0 + y1) + (y2 + y3))
      c.get(BI_).get(j).i32Add(); load();
      at(0); load(); at(1); load(); add();
      at(2); load(); at(3); load(); add();
      add(); add(); c.set(v);
      c.get(v); store();
    });
    c.get(i).i32(4).i32Add().set(i);
    c.br(0).end().end();
  }
  c.block().loop(); // the remaining rows one at a time (for add: every row)
  c.get(i).get(M_).i32GeS().brIf(1);
  c.get(Y_).get(i).get(ld).i32Mul().i32Add().set(row);
  cols(() => {
    if (sum) {
      c.get(BI_).get(j).i32Add();
      c.get(BI_).get(j).i32Add(); load(); at(0); load(); add(); c.set(v);
    } else {
      at(0);
      at(0); load(); c.get(BI_).get(j).i32Add(); load(); add(); c.set(v);
    }
    c.get(v); store();
  });
  c.get(i).i32(1).i32Add().set(i);
  c.br(0).end().end();
  return { name: `${sum ? "sumRows" : "addBias"}${w === 8 ? "" : "32"}`, params, results: [], code: c };
}

/** The module's bytes (all the kernels), for a shared memory of at most `maxPages` pages, or a plain one of `pages`. */
export function gatesModule(memory: { pages: number; maxPages?: number; shared?: boolean }, fused = false): Uint8Array {
  return assemble([
    gatesForward(), gatesForward32(fused), gatesBackward(8), gatesBackward(4),
    biasRows(8, false), biasRows(4, false), biasRows(8, true), biasRows(4, true),
  ], memory);
}
