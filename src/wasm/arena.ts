/**
 * The SIMD backend's memory: one shared WebAssembly.Memory per model, from which the model's buffers are
 * allocated (a bump allocator, 16-byte aligned), so that the SIMD kernels work on them in place, with no copy.
 *
 * The memory is shared because a shared memory grows without detaching the views already handed out (a
 * non-shared one would empty every typed array of the model on each growth). That needs SharedArrayBuffer:
 * Node, and cross-origin-isolated pages; elsewhere `WasmArena.create` returns null and the model keeps the
 * TypeScript kernels. Nothing is freed: a model that keeps changing its batch size or window leaves its old
 * buffers behind in the arena (as garbage would be, but never collected) until the model is dropped.
 *
 * `simdFor(A, B, C)` is what the matmul dispatcher asks: the arena's product when all three arrays live in one
 * arena, else null (the TypeScript kernels then run).
 */
import { type Gemm, type WasmMemory, compiled, createGemm32, createGemm64 } from "./gemm.js";
import { gatesModule } from "./gates.js";
import { TABLE_BYTES, writeTables } from "./vector-math.js";
import { updateModule } from "./update.js";
import { stepsModule } from "./steps.js";
import { gruModule } from "./gru-gates.js";

/** One LSTM step's σ-gate math (see gates.ts): byte offsets of z, cPrev, c, tanhC, h; 0 when done, 1 when not. */
export type Gates = (B: number, H: number, z: number, cPrev: number, c: number, tanhC: number, h: number) => number;
/** Bias rows (see gates.ts): Y (M, N) += bias, or dBias += column sums of Y; y and bias byte offsets, ldy in elements. */
export type BiasRows = (M: number, N: number, y: number, ldy: number, bias: number) => void;
/** Adam over n weights (see update.ts): byte offsets of w, g, m, v; α, 1 − β1, 1 − β2, ε. */
export type AdamKernel = (n: number, w: number, g: number, m: number, v: number, alpha: number, c1: number, c2: number, eps: number) => void;
/** Σ x² over n values at a byte offset (see update.ts). */
export type SumSquares = (n: number, x: number) => number;
/** g ← a·g + b·h over n values (see update.ts): byte offsets of g and h, then a and b. */
export type MixKernel = (n: number, g: number, h: number, a: number, b: number) => void;
/** Its backward (see gates.ts): byte offsets of gates, cPrev, tanhC, dh, dc, dz. */
export type GatesBack = (B: number, H: number, gates: number, cPrev: number, tanhC: number, dh: number, dc: number, dz: number) => void;
/**
 * An LSTM layer's forward and backward over n steps, one call each (see steps.ts), for a batch of fewer than four
 * rows: the input projection and the loop; the loop and the weight gradients. Forward returns the steps done
 * (fewer than n when the float64 gate kernel declines one); with packR 1 it packs R in strips first (region 2, as
 * backward's Rᵀ), for its products to read. Byte offsets, as the module takes them.
 */
export interface Steps {
  forward(
    n: number, B: number, H: number, hs: number, cs: number, z: number, tc: number, R: number,
    I: number, x: number, W: number, bias: number, project: number, packR: number,
  ): number;
  backward(
    n: number, B: number, H: number, cs: number, g: number, tc: number, dh: number, dc: number, dz: number, R: number, ds: number, nSeq: number,
    I: number, x: number, hp: number, dW: number, dB: number, weights: number,
  ): void;
}

/**
 * One GRU step's gate math (resetAfter, σ gates; see gru-gates.ts): byte offsets of gx, gu, hPrev, hNext; the rows
 * done (B, or the first row the float64 kernel declines).
 */
export type GruGates = (B: number, H: number, gx: number, gu: number, hPrev: number, hNext: number) => number;
/** Its backward (see gru-gates.ts): byte offsets of gx, gu, hPrev, dh, dX, dU. */
export type GruGatesBack = (B: number, H: number, gx: number, gu: number, hPrev: number, dh: number, dX: number, dU: number) => void;

type Float = Float32Array | Float64Array;

const WA = (globalThis as unknown as {
  WebAssembly?: {
    Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory & { grow(pages: number): number };
    Module: new (bytes: Uint8Array) => object;
    Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  };
}).WebAssembly;

/** Which arena a buffer belongs to (every SharedArrayBuffer object a memory has handed out). */
const OWNER = new WeakMap<ArrayBufferLike, WasmArena>();
/** True once any arena exists: until then the dispatcher skips its lookups entirely. */
export let anyArena = false;

const PAGE = 65536, MAX_PAGES = 65536; // 4 GiB, the wasm32 limit

export class WasmArena {
  private top = 0;
  /** Where the products pack their operands (see `Scratch` in gemm.ts): one region, replaced when too small. */
  private scratchAt = [0, 0, 0];
  private scratchBytes = [0, 0, 0];
  readonly gemm64: Gemm;
  readonly gemm32: Gemm;
  readonly gates64: Gates;
  readonly gates32: Gates;
  readonly gatesBack64: GatesBack;
  readonly gatesBack32: GatesBack;
  readonly gru64: GruGates;
  readonly gru32: GruGates;
  readonly gruBack64: GruGatesBack;
  readonly gruBack32: GruGatesBack;
  readonly adam64: AdamKernel;
  readonly adam32: AdamKernel;
  readonly sumSquares64: SumSquares;
  readonly sumSquares32: SumSquares;
  readonly mix64: MixKernel;
  readonly mix32: MixKernel;
  /** Zeros over n bytes at a byte offset (see update.ts). */
  readonly zero: (n: number, x: number) => void;
  /** Copies n bytes from byte offset src to dst, the regions apart (see update.ts). */
  readonly copy: (n: number, dst: number, src: number) => void;
  readonly steps64: Steps;
  readonly steps32: Steps;
  /** [add float64, add float32, sum float64, sum float32] */
  readonly bias: readonly BiasRows[];
  /**
   * Whether the products add each product with relaxed SIMD's multiply-add (rounded once where the CPU fuses it;
   * see gemm.ts), and the float32 gate kernel's exp its steps likewise (gates.ts): `Sequential({ fma: true })`.
   */
  readonly fused: boolean;
  private constructor(private readonly memory: WasmMemory & { grow(pages: number): number }, fused: boolean) {
    this.fused = fused;
    OWNER.set(memory.buffer, this);
    const scratch = (bytes: number, region: 0 | 1): number => this.scratch(bytes, region);
    this.gemm64 = createGemm64(memory, { maxPages: MAX_PAGES }, scratch, fused);
    this.gemm32 = createGemm32(memory, { maxPages: MAX_PAGES }, scratch, fused);
    // The σ/tanh tables, once, at the bottom of the arena; the gate kernels read them there. (So no array starts at
    // byte 0, which the steps kernels take for "none".)
    const tables = this.reserve(TABLE_BYTES);
    writeTables(memory.buffer, tables);
    const module = compiled(fused ? "gates fused" : "gates", () => gatesModule({ pages: 1, maxPages: MAX_PAGES, shared: true }, fused));
    const ex = new WA!.Instance(module, { env: { memory } }).exports as
      Record<"gates", (B: number, H: number, z: number, cp: number, c: number, tc: number, h: number, tab: number) => number> &
      Record<"gates32", (B: number, H: number, z: number, cp: number, c: number, tc: number, h: number) => number> &
      Record<"gatesBack" | "gatesBack32", GatesBack> & Record<"addBias" | "addBias32" | "sumRows" | "sumRows32", BiasRows>;
    this.gates64 = (B, H, z, cp, c, tc, h) => ex.gates(B, H, z, cp, c, tc, h, tables);
    this.gates32 = ex.gates32;
    this.gatesBack64 = ex.gatesBack;
    this.gatesBack32 = ex.gatesBack32;
    this.bias = [ex.addBias, ex.addBias32, ex.sumRows, ex.sumRows32];
    const gru = new WA!.Instance(compiled(fused ? "gru fused" : "gru", () => gruModule({ pages: 1, maxPages: MAX_PAGES, shared: true }, fused)), { env: { memory } })
      .exports as Record<"gru", (B: number, H: number, gx: number, gu: number, hp: number, hn: number, tab: number) => number> &
      Record<"gru32", GruGates> & Record<"gruBack" | "gruBack32", GruGatesBack>;
    this.gru64 = (B, H, gx, gu, hp, hn) => gru.gru(B, H, gx, gu, hp, hn, tables);
    this.gru32 = gru.gru32;
    this.gruBack64 = gru.gruBack;
    this.gruBack32 = gru.gruBack32;
    const up = new WA!.Instance(compiled("update", () => updateModule({ pages: 1, maxPages: MAX_PAGES, shared: true })), { env: { memory } })
      .exports as Record<"adam" | "adam32", AdamKernel> & Record<"sumSquares" | "sumSquares32", SumSquares> & Record<"mix" | "mix32", MixKernel> &
      Record<"zero", (n: number, x: number) => void> & Record<"copy", (n: number, dst: number, src: number) => void>;
    this.adam64 = up.adam;
    this.adam32 = up.adam32;
    this.sumSquares64 = up.sumSquares;
    this.sumSquares32 = up.sumSquares32;
    this.mix64 = up.mix;
    this.mix32 = up.mix32;
    this.zero = up.zero;
    this.copy = up.copy;
    // (the parameters as Steps has them, float64's gate tables and both backwards' packing of Rᵀ added)
    type Forward = (...args: number[]) => number;
    type Backward = (...args: number[]) => void;
    const st = new WA!.Instance(compiled(fused ? "steps fused" : "steps", () => stepsModule({ pages: 1, maxPages: MAX_PAGES, shared: true }, fused)), { env: { memory } })
      .exports as Record<"forward" | "forward32", Forward> & Record<"backward" | "backward32", Backward>;
    // Rᵀ's packing for backward: 4H values for each of H columns rounded up to a whole strip (32 bytes), region 2;
    // forward's packing of R (H rows of 4H values) fits in it too.
    const packing = (H: number, w: number): number => this.scratch(4 * H * w * Math.ceil((H * w) / 32) * (32 / w), 2);
    this.steps64 = {
      forward: (n, B, H, hs, cs, z, tc, R, I, x, W, bias, project, packR) =>
        st.forward(n, B, H, hs, cs, z, tc, R, tables, I, x, W, bias, project, packR ? packing(H, 8) : 0),
      backward: (n, B, H, cs, g, tc, dh, dc, dz, R, ds, nSeq, I, x, hp, dW, dB, weights) =>
        st.backward(n, B, H, cs, g, tc, dh, dc, dz, R, packing(H, 8), ds, nSeq, I, x, hp, dW, dB, weights),
    };
    this.steps32 = {
      forward: (n, B, H, hs, cs, z, tc, R, I, x, W, bias, project, packR) =>
        st.forward32(n, B, H, hs, cs, z, tc, R, I, x, W, bias, project, packR ? packing(H, 4) : 0),
      backward: (n, B, H, cs, g, tc, dh, dc, dz, R, ds, nSeq, I, x, hp, dW, dB, weights) =>
        st.backward32(n, B, H, cs, g, tc, dh, dc, dz, R, packing(H, 4), ds, nSeq, I, x, hp, dW, dB, weights),
    };
  }

  /**
   * A new arena, or null when this runtime has no shared WebAssembly memory or no SIMD. `fused`: the products and
   * the float32 gate math use relaxed SIMD's multiply-add (the caller has checked `relaxedSimd()`).
   */
  static create(initialBytes = 1 << 20, fused = false): WasmArena | null {
    if (!WA || typeof SharedArrayBuffer === "undefined") return null;
    try {
      const memory = new WA.Memory({ initial: Math.max(1, Math.ceil(initialBytes / PAGE)), maximum: MAX_PAGES, shared: true });
      const arena = new WasmArena(memory, fused);
      anyArena = true;
      return arena;
    } catch {
      return null; // no SIMD, or no shared memory here
    }
  }

  /** n zeroed values of the dtype, in the arena (growing it when needed). */
  alloc(dtype: "float32" | "float64", n: number): Float {
    const w = dtype === "float32" ? 4 : 8;
    const start = this.reserve(n * w), buf = this.memory.buffer;
    // The buffer object the view is made on is the one `simdFor` will look up. A shared memory's `buffer` is
    // not always the same object without this memory growing: measured, when a worker thread's shared memory
    // grew, this thread's shared memories handed out new buffer objects, and the views made on them then ran
    // in TypeScript (test/wasm.test.ts, "with 2 threads"). So every object views are made on is registered.
    OWNER.set(buf, this);
    // Fresh pages are zero, but the bump pointer never reuses memory, so every allocation is zero already.
    return dtype === "float32" ? new Float32Array(buf, start, n) : new Float64Array(buf, start, n);
  }

  /**
   * The byte offset of a region of at least `bytes` for the products' packed operands (region 0: within a call;
   * 1: a B held across calls; 2: the recurrent kernel's packing in `Steps.backward`). A region is reused from call
   * to call; a larger need takes a new one (twice as large, so that few are left behind).
   */
  private scratch(bytes: number, region: 0 | 1 | 2): number {
    if (bytes > this.scratchBytes[region]!) {
      this.scratchBytes[region] = Math.max(bytes, 2 * this.scratchBytes[region]!, 65536);
      this.scratchAt[region] = this.reserve(this.scratchBytes[region]!);
    }
    return this.scratchAt[region]!;
  }

  /** `bytes` more bytes at the top, 16-byte aligned, growing the memory when needed: their byte offset. */
  private reserve(bytes: number): number {
    const start = (this.top + 15) & ~15;
    const end = start + bytes;
    let buf = this.memory.buffer;
    // Past 4 GiB before growing: a size that can never fit leaves the memory as it was.
    if (end > MAX_PAGES * PAGE) throw new RangeError(`the SIMD backend's memory is full (4 GiB)`);
    if (end > buf.byteLength) {
      const more = Math.ceil((end - buf.byteLength) / PAGE);
      const grow = Math.max(more, Math.ceil(buf.byteLength / PAGE / 2)); // amortised: grow by half at least
      this.memory.grow(Math.min(grow, MAX_PAGES - buf.byteLength / PAGE));
      buf = this.memory.buffer;
      OWNER.set(buf, this);
      if (end > buf.byteLength) throw new RangeError(`the SIMD backend's memory is full (4 GiB)`);
    }
    this.top = end;
    return start;
  }

  /** The bytes the arena holds. */
  get bytes(): number {
    return this.memory.buffer.byteLength;
  }
}

/** A view's arena (null: none) and byte offset, and whether it is float32. */
interface Where { arena: WasmArena | null; at: number; f32: boolean }
const NONE: Where = { arena: null, at: 0, f32: false };
/**
 * Each view's Where, looked up by the view itself: ~7 ns, where reading a shared view's `buffer` and `byteOffset`
 * and looking the buffer up in OWNER took ~45 ns (measured), per array and kernel call, hundreds of times in a
 * small model's step. Filled on a view's first lookup; a view's buffer and offset never change.
 */
const VIEWS = new WeakMap<Float, Where>();

function where(a: Float): Where {
  let v = VIEWS.get(a);
  if (v === undefined) {
    const arena = OWNER.get(a.buffer);
    v = arena ? { arena, at: a.byteOffset, f32: a instanceof Float32Array } : NONE;
    VIEWS.set(a, v);
  }
  return v;
}

/** The byte offsets of the arrays of the last lookup below that returned a kernel, in the order of its arguments. */
export const at: number[] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/** True when all of `ws` are views of one arena with `ws[0]`'s dtype; their byte offsets then in `at`. */
function together(w0: Where, w1: Where, w2: Where = w0, w3: Where = w0, w4: Where = w0, w5: Where = w0): boolean {
  const a = w0.arena, f = w0.f32;
  if (a === null || w1.arena !== a || w2.arena !== a || w3.arena !== a || w4.arena !== a || w5.arena !== a) return false;
  if (w1.f32 !== f || w2.f32 !== f || w3.f32 !== f || w4.f32 !== f || w5.f32 !== f) return false;
  at[0] = w0.at; at[1] = w1.at; at[2] = w2.at; at[3] = w3.at; at[4] = w4.at; at[5] = w5.at;
  return true;
}

/**
 * A kernel and the byte offsets of its arrays, looked up once for a loop whose calls pass the same arrays (the
 * steps of an LSTM): each call then skips the lookups, which cost a small model's step about a tenth of its time.
 */
export interface Plan<K> { readonly run: K; readonly at: readonly number[] }

/** The plan of the lookup just made (its kernel, or null, and `at`). */
export function plan<K>(kernel: K | null): Plan<K> | null {
  return kernel === null ? null : { run: kernel, at: at.slice() };
}

/** The product that runs on A, B and C in place, when the three live in one arena and share a dtype (offsets in `at`). */
export function simdFor(A: Float, B: Float, C: Float): Gemm | null {
  const a = where(A);
  if (!together(a, where(B), where(C))) return null;
  return a.f32 ? a.arena!.gemm32 : a.arena!.gemm64;
}

/** The gate kernel that runs on the five arrays in place, when all live in one arena and share a dtype (offsets in `at`). */
export function gatesFor(z: Float, cPrev: Float, c: Float, tanhC: Float, h: Float): Gates | null {
  const a = where(z);
  if (!together(a, where(cPrev), where(c), where(tanhC), where(h))) return null;
  return a.f32 ? a.arena!.gates32 : a.arena!.gates64;
}

/** The backward gate kernel on the six arrays in place, when all live in one arena and share a dtype (offsets in `at`). */
export function gatesBackFor(gates: Float, cPrev: Float, tanhC: Float, dh: Float, dc: Float, dz: Float): GatesBack | null {
  const a = where(gates);
  if (!together(a, where(cPrev), where(tanhC), where(dh), where(dc), where(dz))) return null;
  return a.f32 ? a.arena!.gatesBack32 : a.arena!.gatesBack64;
}

/** The GRU's gate kernel on gx, gu and the states in place, when all live in one arena and share a dtype (offsets in `at`). */
export function gruGatesFor(gx: Float, gu: Float, hs: Float): GruGates | null {
  const a = where(gx);
  if (!together(a, where(gu), where(hs))) return null;
  return a.f32 ? a.arena!.gru32 : a.arena!.gru64;
}

/** Its backward on gx, gu, the states, dh, dX and dU in place, when all live in one arena and share a dtype (offsets in `at`). */
export function gruGatesBackFor(gx: Float, gu: Float, hs: Float, dh: Float, dX: Float, dU: Float): GruGatesBack | null {
  const a = where(gx);
  if (!together(a, where(gu), where(hs), where(dh), where(dX), where(dU))) return null;
  return a.f32 ? a.arena!.gruBack32 : a.arena!.gruBack64;
}

/** The bias kernel (`sum`: column sums into the bias) on Y and the bias in place, when both live in one arena (offsets in `at`). */
export function biasFor(Y: Float, bias: Float, sum: boolean): BiasRows | null {
  const a = where(Y);
  if (!together(a, where(bias))) return null;
  return a.arena!.bias[(sum ? 2 : 0) + (a.f32 ? 1 : 0)]!;
}

/**
 * An extra array's byte offset when it lives in `a`'s arena with `a`'s dtype (null: 0, which no array's offset
 * is: the gate tables take an arena's first bytes), else −1.
 */
function alongside(a: Where, x: Float | null): number {
  if (x === null) return 0;
  const v = where(x);
  return v.arena === a.arena && v.f32 === a.f32 ? v.at : -1;
}

/**
 * The recurrence's loops on h, c, the gates, tanh(c), R, the inputs x, W and the bias (null: none) in place, when all
 * live in one arena (offsets in `at`, in this order; 0 for no bias).
 */
export function stepsFor(hs: Float, cs: Float, gates: Float, tanhC: Float, R: Float, x: Float, W: Float, bias: Float | null): Steps | null {
  const a = where(hs), ox = alongside(a, x), ow = alongside(a, W), ob = alongside(a, bias);
  if (ox < 0 || ow < 0 || ob < 0 || !together(a, where(cs), where(gates), where(tanhC), where(R))) return null;
  at[5] = ox; at[6] = ow; at[7] = ob;
  return a.f32 ? a.arena!.steps32 : a.arena!.steps64;
}

/**
 * Its backward on c, the gates, tanh(c), dh, dc, dz, then R, the gradients from above (null: none), the inputs x,
 * h, the weights' gradients and the bias's (null: none), when all live in one arena (offsets in `at`, in this
 * order; 0 for the nulls).
 */
export function stepsBackFor(
  cs: Float, gates: Float, tanhC: Float, dh: Float, dc: Float, dz: Float,
  R: Float, dhSeq: Float | null, x: Float, hs: Float, dW: Float, dBias: Float | null,
): Steps | null {
  const a = where(cs), o0 = alongside(a, R), o1 = alongside(a, dhSeq), o2 = alongside(a, x), o3 = alongside(a, hs);
  const o4 = alongside(a, dW), o5 = alongside(a, dBias);
  if (o0 < 0 || o1 < 0 || o2 < 0 || o3 < 0 || o4 < 0 || o5 < 0) return null;
  if (!together(a, where(gates), where(tanhC), where(dh), where(dc), where(dz))) return null;
  at[6] = o0; at[7] = o1; at[8] = o2; at[9] = o3; at[10] = o4; at[11] = o5;
  return a.f32 ? a.arena!.steps32 : a.arena!.steps64;
}

/** Adam on the weights, gradients and moments in place, when all live in one arena (m and v float64; offsets in `at`). */
export function adamFor(w: Float, g: Float, m: Float64Array, v: Float64Array): AdamKernel | null {
  const a = where(w), wm = where(m), wv = where(v);
  if (!together(a, where(g)) || wm.arena !== a.arena || wv.arena !== a.arena) return null;
  at[2] = wm.at; at[3] = wv.at;
  return a.f32 ? a.arena!.adam32 : a.arena!.adam64;
}

/** Σ x² in SIMD when x lives in an arena (its offset in `at[0]`), else null. */
export function sumSquaresFor(x: Float): SumSquares | null {
  const a = where(x);
  if (a.arena === null) return null;
  at[0] = a.at;
  return a.f32 ? a.arena.sumSquares32 : a.arena.sumSquares64;
}

/** Zeros over x in SIMD when x lives in an arena (its offset in `at[0]`), else null. */
export function zeroFor(x: Float): ((n: number, x: number) => void) | null {
  const a = where(x);
  if (a.arena === null) return null;
  at[0] = a.at;
  return a.arena.zero;
}

/** A copy between dst and src in SIMD when both live in one arena and share a dtype (offsets in `at`), else null. */
export function copyFor(dst: Float, src: Float): ((n: number, dst: number, src: number) => void) | null {
  const a = where(dst);
  if (!together(a, where(src))) return null;
  return a.arena!.copy;
}

/** g ← a·g + b·h in SIMD when g and h live in one arena and share a dtype (offsets in `at`), else null. */
export function mixFor(g: Float, h: Float): MixKernel | null {
  const a = where(g);
  if (!together(a, where(h))) return null;
  return a.f32 ? a.arena!.mix32 : a.arena!.mix64;
}

/** The arena `allocate` draws from while one is set (see tensor.ts), or null. */
let current: WasmArena | null = null;

/** Runs `fn` with the model's buffers allocated from `arena` (null: the ordinary heap). */
export function withArena<T>(arena: WasmArena | null, fn: () => T): T {
  if (arena === null) return fn();
  const prev = current;
  current = arena;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** The arena in effect for allocations, or null. */
export function currentArena(): WasmArena | null {
  return current;
}
