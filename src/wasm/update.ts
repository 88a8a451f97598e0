/**
 * The optimizer's side of a training step in WebAssembly SIMD, on the model's buffers in its arena: Adam's update,
 * the sums of squares that bound an update (see `applyUpdate` in engine.ts) and the merge of the threads'
 * gradients before it, two float64 lanes at a time.
 *
 * Adam is `Adam.apply`'s loop (optimizers.ts), operation for operation, so bit-identical to it: per weight,
 * m' = m + (g − m)·c1, v' = v + (g·g − v)·c2, w' = w − (α·m')/(√v' + ε), with c1 = 1 − β1 and c2 = 1 − β2 computed
 * by the caller, m and v float64, w and g float64 or float32 (widened on load, w' rounded on store, as a
 * Float32Array store rounds). An odd count leaves one weight to a scalar pass with the same operations.
 */
import { Code, F64, I32, V128, assemble, type FunctionDef } from "./assembler.js";

/** Two values (`pair`, as f64x2) or one (f64) of w bytes each at the address on the stack (+ offset), float32 widened exactly. */
function loadWide(c: Code, w: 4 | 8, pair: boolean, offset = 0): void {
  if (pair) { if (w === 8) c.v128Load(offset); else c.v128Load64Zero(offset).f64x2PromoteLowF32x4(); }
  else if (w === 8) c.f64Load(offset); else c.f32Load(offset).f64PromoteF32();
}

/** Stores two float64 values (`pair`) or one as w-byte values at the address below them, float32 rounded to nearest. */
function storeNarrow(c: Code, w: 4 | 8, pair: boolean): void {
  if (pair) { if (w === 8) c.v128Store(); else c.f32x4DemoteF64x2Zero().v128Store64Lane(0); }
  else if (w === 8) c.f64Store(); else c.f32DemoteF64().f32Store();
}

/** Adam over n weights: parameters n, w, g, m, v (byte offsets), α, c1, c2, ε. */
function adam(w: 4 | 8): FunctionDef {
  const params = [I32, I32, I32, I32, I32, F64, F64, F64, F64] as const;
  const N = 0, W = 1, G = 2, Mm = 3, Vv = 4, AL = 5, C1 = 6, C2 = 7, EPS = 8;
  const c = new Code(params);
  const k = c.local(I32), pw = c.local(I32), pg = c.local(I32), pm = c.local(I32), pv = c.local(I32), end = c.local(I32);
  /** Two weights as f64x2, or one as f64: the loads and arithmetic, and the locals the formula runs on. */
  interface Lanes {
    loadW(): void; storeW(): void; loadF64(): void; storeF64(): void;
    sub(): void; mul(): void; add(): void; div(): void; sqrt(): void;
    g: number; m: number; v: number; al: number; c1: number; c2: number; eps: number;
  }
  const pair: Lanes = {
    loadW: () => loadWide(c, w, true), storeW: () => storeNarrow(c, w, true),
    loadF64: () => { c.v128Load(); }, storeF64: () => { c.v128Store(); },
    sub: () => { c.f64x2Sub(); }, mul: () => { c.f64x2Mul(); }, add: () => { c.f64x2Add(); },
    div: () => { c.f64x2Div(); }, sqrt: () => { c.f64x2Sqrt(); },
    g: c.local(V128), m: c.local(V128), v: c.local(V128),
    al: c.local(V128), c1: c.local(V128), c2: c.local(V128), eps: c.local(V128),
  };
  const one: Lanes = {
    loadW: () => loadWide(c, w, false), storeW: () => storeNarrow(c, w, false),
    loadF64: () => { c.f64Load(); }, storeF64: () => { c.f64Store(); },
    sub: () => { c.f64Sub(); }, mul: () => { c.f64Mul(); }, add: () => { c.f64Add(); },
    div: () => { c.f64Div(); }, sqrt: () => { c.f64Sqrt(); },
    g: c.local(F64), m: c.local(F64), v: c.local(F64), al: AL, c1: C1, c2: C2, eps: EPS,
  };
  /** The update of the weights at pw, pg, pm, pv: written once, so the pairs and the last weight do the same operations. */
  const update = (o: Lanes): void => {
    c.get(pg); o.loadW(); c.set(o.g);
    // m' = m + (g − m)·c1
    c.get(pm); o.loadF64(); c.tee(o.m).get(o.g).get(o.m); o.sub(); c.get(o.c1); o.mul(); o.add(); c.set(o.m);
    // v' = v + (g·g − v)·c2
    c.get(pv); o.loadF64(); c.tee(o.v).get(o.g).get(o.g); o.mul(); c.get(o.v); o.sub(); c.get(o.c2); o.mul(); o.add(); c.set(o.v);
    c.get(pm).get(o.m); o.storeF64();
    c.get(pv).get(o.v); o.storeF64();
    // w' = w − (α·m')/(√v' + ε)
    c.get(pw);
    c.get(pw); o.loadW();
    c.get(o.al).get(o.m); o.mul(); c.get(o.v); o.sqrt(); c.get(o.eps); o.add(); o.div(); o.sub();
    o.storeW();
  };
  c.get(AL).f64x2Splat().set(pair.al);
  c.get(C1).f64x2Splat().set(pair.c1);
  c.get(C2).f64x2Splat().set(pair.c2);
  c.get(EPS).f64x2Splat().set(pair.eps);
  c.get(W).set(pw); c.get(G).set(pg); c.get(Mm).set(pm); c.get(Vv).set(pv);
  c.get(N).i32(-2).i32And().set(end); // pairs
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(end).i32GeS().brIf(1);
  update(pair);
  c.get(pw).i32(2 * w).i32Add().set(pw);
  c.get(pg).i32(2 * w).i32Add().set(pg);
  c.get(pm).i32(16).i32Add().set(pm);
  c.get(pv).i32(16).i32Add().set(pv);
  c.get(k).i32(2).i32Add().set(k);
  c.br(0).end().end();
  c.block(); // the last weight of an odd count
  c.get(end).get(N).i32GeS().brIf(0);
  update(one);
  c.end();
  return { name: w === 8 ? "adam" : "adam32", params, results: [], code: c };
}

/**
 * Σ x² over n values at x (byte offset), float64 or float32 widened: eight values at a time into four two-lane
 * sums (one sum's chain of dependent adds held it to ~1.5 cycles a value: 0.2 ms for S4's 394,497 weights), then
 * two at a time into the first, then all lanes together and the last value of an odd count. A bound, not a
 * reference sum (its order is not a loop's): √ of it is at least the largest |x|, and it is finite only if every
 * x is.
 */
function sumSquares(w: 4 | 8): FunctionDef {
  const params = [I32, I32] as const;
  const N = 0, X = 1;
  const c = new Code(params);
  const k = c.local(I32), p = c.local(I32), end = c.local(I32), x = c.local(V128), s = c.local(F64), t = c.local(F64);
  const acc = [c.local(V128), c.local(V128), c.local(V128), c.local(V128)];
  /** acc[j] += x² for the two values at p + offset. */
  const add = (j: number, offset: number): void => {
    c.get(p);
    loadWide(c, w, true, offset);
    c.tee(x).get(x).f64x2Mul().get(acc[j]!).f64x2Add().set(acc[j]!);
  };
  for (const a of acc) c.f64(0).f64x2Splat().set(a);
  c.get(X).set(p);
  c.i32(0).set(k);
  c.get(N).i32(-8).i32And().set(end); // blocks of eight
  c.block().loop();
  c.get(k).get(end).i32GeS().brIf(1);
  for (let j = 0; j < 4; j++) add(j, 2 * w * j);
  c.get(p).i32(8 * w).i32Add().set(p);
  c.get(k).i32(8).i32Add().set(k);
  c.br(0).end().end();
  c.get(N).i32(-2).i32And().set(end); // pairs
  c.block().loop();
  c.get(k).get(end).i32GeS().brIf(1);
  add(0, 0);
  c.get(p).i32(2 * w).i32Add().set(p);
  c.get(k).i32(2).i32Add().set(k);
  c.br(0).end().end();
  c.get(acc[0]!).get(acc[1]!).f64x2Add().get(acc[2]!).get(acc[3]!).f64x2Add().f64x2Add().set(x);
  c.get(x).f64x2ExtractLane(0).get(x).f64x2ExtractLane(1).f64Add().set(s);
  c.block();
  c.get(end).get(N).i32GeS().brIf(0);
  c.get(p);
  loadWide(c, w, false);
  c.set(t);
  c.get(s).get(t).get(t).f64Mul().f64Add().set(s);
  c.end();
  c.get(s);
  return { name: w === 8 ? "sumSquares" : "sumSquares32", params, results: [F64], code: c };
}

/**
 * g ← a·g + b·h over n values at g and h (byte offsets): the merge of two threads' gradients (threads/pool.ts),
 * `a * g[i] + b * h[i]` of its TypeScript loop operation for operation (float32 widened to float64 on load and
 * rounded once on store, as that loop's Float32Array store does), so bit-identical to it; two values at a time,
 * then the last value of an odd count.
 */
function mix(w: 4 | 8): FunctionDef {
  const params = [I32, I32, I32, F64, F64] as const;
  const N = 0, G = 1, Hh = 2, A = 3, Bb = 4;
  const c = new Code(params);
  const k = c.local(I32), pg = c.local(I32), ph = c.local(I32), end = c.local(I32), a2 = c.local(V128), b2 = c.local(V128);
  /** g ← a·g + b·h at pg and ph, for two values (pair) or one: written once, so both do the same operations. */
  const update = (pair: boolean, a: number, b: number): void => {
    const mul = (): void => { if (pair) c.f64x2Mul(); else c.f64Mul(); };
    c.get(pg);
    c.get(a).get(pg); loadWide(c, w, pair); mul();
    c.get(b).get(ph); loadWide(c, w, pair); mul();
    if (pair) c.f64x2Add(); else c.f64Add();
    storeNarrow(c, w, pair);
  };
  c.get(A).f64x2Splat().set(a2);
  c.get(Bb).f64x2Splat().set(b2);
  c.get(G).set(pg); c.get(Hh).set(ph);
  c.get(N).i32(-2).i32And().set(end);
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(end).i32GeS().brIf(1);
  update(true, a2, b2);
  c.get(pg).i32(2 * w).i32Add().set(pg);
  c.get(ph).i32(2 * w).i32Add().set(ph);
  c.get(k).i32(2).i32Add().set(k);
  c.br(0).end().end();
  c.block(); // the last value of an odd count
  c.get(end).get(N).i32GeS().brIf(0);
  update(false, A, Bb);
  c.end();
  return { name: w === 8 ? "mix" : "mix32", params, results: [], code: c };
}

/**
 * Zeros over n bytes at x (n a multiple of 4): 16 at a time, then 4. (TypedArray.fill on a shared memory's view
 * took ~0.4 µs for 491 float32 values, against ~0.07 on an ordinary one: the gradients, zeroed before every
 * backward, are that size in the seed model.)
 */
function zero(): FunctionDef {
  const params = [I32, I32] as const;
  const N = 0, X = 1;
  const c = new Code(params);
  const p = c.local(I32), end = c.local(I32), z = c.local(V128);
  c.f64(0).f64x2Splat().set(z);
  c.get(X).set(p);
  c.get(X).get(N).i32(-16).i32And().i32Add().set(end);
  c.block().loop();
  c.get(p).get(end).i32GeS().brIf(1);
  c.get(p).get(z).v128Store(0);
  c.get(p).i32(16).i32Add().set(p);
  c.br(0).end().end();
  c.get(X).get(N).i32Add().set(end);
  c.block().loop();
  c.get(p).get(end).i32GeS().brIf(1);
  c.get(p).f32(0).f32Store();
  c.get(p).i32(4).i32Add().set(p);
  c.br(0).end().end();
  return { name: "zero", params, results: [], code: c };
}

/**
 * Copies n bytes from src to dst (n a multiple of 4; the two regions do not overlap): 16 at a time, then 4. The
 * carried states go in and out of a stateful model's slots with it at every call, where a loop or TypedArray.set
 * on a shared memory's views took ~0.4 µs for an LSTM(64)'s h and c, a tenth of a streamed step.
 */
function copy(): FunctionDef {
  const params = [I32, I32, I32] as const;
  const N = 0, DST = 1, SRC = 2;
  const c = new Code(params);
  const k = c.local(I32), end = c.local(I32);
  c.get(N).i32(-16).i32And().set(end);
  c.block().loop();
  c.get(k).get(end).i32GeS().brIf(1);
  c.get(DST).get(k).i32Add().get(SRC).get(k).i32Add().v128Load(0).v128Store(0);
  c.get(k).i32(16).i32Add().set(k);
  c.br(0).end().end();
  c.block().loop();
  c.get(k).get(N).i32GeS().brIf(1);
  c.get(DST).get(k).i32Add().get(SRC).get(k).i32Add().f32Load().f32Store();
  c.get(k).i32(4).i32Add().set(k);
  c.br(0).end().end();
  return { name: "copy", params, results: [], code: c };
}

/** The module's bytes, for a shared memory of at most `maxPages` pages. */
export function updateModule(memory: { pages: number; maxPages?: number; shared?: boolean }): Uint8Array {
  return assemble([adam(8), adam(4), sumSquares(8), sumSquares(4), mix(8), mix(4), zero(), copy()], memory);
}
