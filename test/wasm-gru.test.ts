/**
 * The GRU's WebAssembly SIMD gate kernels (src/wasm/gru-gates.ts) against its TypeScript loops (gruGatesForward and
 * gruGatesBackward in src/tensor/gru-gates.ts on heap arrays): float64 bit for bit, over the whole range of inputs and
 * every count of units a row's passes leave; float32 as float32 arithmetic gives it (σ within 2 and tanh within 3
 * float32 ulps, the sums and the mix exactly as the kernel's own operations round them); a float64 row with a σ input
 * below −708 declined to TypeScript; nothing written past the arrays; and a GRU model on the SIMD backend finds them.
 */
import { setFlagsFromString } from "node:v8";
import { describe, expect, it } from "vitest";
import { fastSigmoid, fastTanh, gruGatesBackPlan, gruGatesBackward, gruGatesForward, gruGatesPlan } from "../src/tensor/kernels.js";
import { WasmArena } from "../src/wasm/arena.js";
import { Sequential, GRU, Dense, randomNormal } from "../src/index.js";
import { makeRng, uniformArray } from "./helpers/gradcheck.js";

type Rng = ReturnType<typeof makeRng>;
type Float = Float32Array | Float64Array;

/** Pre-activations over the whole range: ordinary, large, the clamp and table edges, and the special values. */
function preActivations(rng: Rng, n: number): number[] {
  const edges = [0, -0, 1e-300, -1e-300, 5e-324, 22, -22, 22.0000001, -21.9999999, 5.545, -5.545, 5.5452, -5.5452, 11.09, -11.09,
    -708, -707.9999, 709.7, 745.2, 745.3, 800, -745.2, 1e300, -1e300, Infinity, NaN, 0.1868251, -0.1868251, 3e-9, -3e-9];
  const out: number[] = [];
  for (let q = 0; q < n; q++) {
    const u = rng.uniform(), kind = q % 5;
    if (kind === 0) out.push(edges[q / 5 % edges.length | 0]!);
    else if (kind === 1) out.push((u * 2 - 1) * 4);
    else if (kind === 2) out.push((u * 2 - 1) * 30);
    else if (kind === 3) out.push((u * 2 - 1) * 700);
    else out.push((u * 2 - 1) * 1e-6);
  }
  return out;
}

/**
 * Rows the kernels' loops take apart: H/2 float64 pairs a row of 1, 3, 32, 15 (3 passes of four and 3 left), 2, 5, 9;
 * float32 quads with and without a half vector (H ≡ 2 mod 4), 0 to 3 whole quads left after the passes.
 */
const SHAPES: readonly (readonly [number, number])[] = [[1, 2], [3, 6], [8, 64], [5, 30], [2, 4], [4, 10], [2, 18], [3, 12], [2, 8], [1, 34]];
const PAD = 8, SENT = 7.25; // past each array: must stay

/** A copy of `a` in the arena with PAD sentinels after it. */
function put(arena: WasmArena, dtype: "float32" | "float64", a: ArrayLike<number>): Float {
  const v = arena.alloc(dtype, a.length + PAD);
  v.fill(SENT);
  v.set(a);
  return v;
}

function untouchedPast(name: string, a: Float, n: number): void {
  for (let q = n; q < n + PAD; q++) if (a[q] !== SENT) expect.fail(`${name}[${q}] written past the end`);
}

/** Distance in float32 ulps: the gap between the two values' positions in the ordered float32 line (subnormals included). */
const u32 = new Uint32Array(1), f32v = new Float32Array(u32.buffer);
const ord = (v: number): number => { f32v[0] = v; const b = u32[0]!; return b >= 0x80000000 ? -(b - 0x80000000) : b; };
const ulps32 = (got: number, want: number): number => (Object.is(got, want) ? 0 : Number.isNaN(got) || Number.isNaN(want) ? Infinity : Math.abs(ord(got) - ord(want)));
/** σ and tanh rounded to float32 from the float64 kernels, themselves within 3 double ulps of the true values. */
const sig32 = (x: number): number => Math.fround(x < -708 ? Math.exp(x) : fastSigmoid(x));
const tanh32 = (x: number): number => Math.fround(fastTanh(x));

describe("WebAssembly SIMD GRU gate math (src/wasm/gru-gates.ts)", () => {
  it("float64: z, r, ĥ and h_t bit for bit as gruGatesForward in TypeScript, over the full range of inputs, nothing written past the arrays", () => {
    const arena = WasmArena.create()!;
    expect(arena).not.toBeNull();
    const rng = makeRng("wasm-gru/forward/float64");
    let ran = 0;
    for (const [B, H] of SHAPES) {
      for (let round = 0; round < 4; round++) {
        const G = 3 * H;
        const gx0 = preActivations(rng, B * G), gu0 = preActivations(rng, B * G), h0 = preActivations(rng, B * H);
        // A σ input (z and r blocks: gx + gu) below -708 makes the kernel decline its row (a test of its own below).
        for (let b = 0; b < B; b++) for (let j = 0; j < 2 * H; j++) {
          const q = b * G + j;
          if (gx0[q]! + gu0[q]! < -708) { gx0[q] = -gx0[q]!; gu0[q] = -gu0[q]!; }
        }
        const heap = { gx: Float64Array.from(gx0), gu: Float64Array.from(gu0), hs: Float64Array.from([...h0, ...new Array<number>(B * H).fill(0)]) };
        gruGatesForward(B, H, heap.gx, 0, heap.gu, 0, heap.hs, 0, B * H, false);
        const gx = put(arena, "float64", gx0), gu = put(arena, "float64", gu0), hs = put(arena, "float64", [...h0, ...new Array<number>(B * H).fill(0)]);
        // Straight to the kernel, so that the test knows it ran every row (B) rather than declining one.
        expect(arena.gru64(B, H, gx.byteOffset, gu.byteOffset, hs.byteOffset, hs.byteOffset + 8 * B * H)).toBe(B);
        ran++;
        for (const [name, got, want] of [["gx", gx, heap.gx], ["gu", gu, heap.gu], ["hs", hs, heap.hs]] as const) {
          for (let q = 0; q < want.length; q++) {
            if (!Object.is(got[q], want[q])) expect.fail(`B=${B} H=${H} ${name}[${q}] = ${got[q]} vs ${want[q]} (gx in ${gx0[q % (B * G)]}, gu ${gu0[q % (B * G)]})`);
          }
          untouchedPast(`B=${B} H=${H} ${name}`, got, want.length);
        }
      }
    }
    expect(ran).toBe(4 * SHAPES.length);
  });

  it("float64: a row with a σ input below -708 ends the call, its rows before written and it not; gruGatesForward then runs it in TypeScript and the rest in SIMD, the same bits as TypeScript throughout", () => {
    const arena = WasmArena.create()!;
    const rng = makeRng("wasm-gru/decline");
    const B = 5, H = 6, G = 3 * H;
    const gx0 = uniformArray(rng, B * G, -3, 3), gu0 = uniformArray(rng, B * G, -3, 3), h0 = uniformArray(rng, 2 * B * H, -1, 1);
    gx0[2 * G + H + 1] = -800; gu0[2 * G + H + 1] = 50; // row 2's r: σ(-750) = e^-750, a subnormal
    gx0[4 * G + 3] = -1e3; // row 4's z
    const gx = put(arena, "float64", gx0), gu = put(arena, "float64", gu0), hs = put(arena, "float64", h0);
    expect(arena.gru64(B, H, gx.byteOffset, gu.byteOffset, hs.byteOffset, hs.byteOffset + 8 * B * H)).toBe(2);
    for (let q = 2 * G; q < B * G; q++) expect(gx[q]).toBe(gx0[q]);
    for (let q = B * H + 2 * H; q < 2 * B * H; q++) expect(hs[q]).toBe(h0[q]);
    const heap = { gx: Float64Array.from(gx0), gu: Float64Array.from(gu0), hs: Float64Array.from(h0) };
    gruGatesForward(B, H, heap.gx, 0, heap.gu, 0, heap.hs, 0, B * H, false);
    const wasm = { gx: put(arena, "float64", gx0), gu: put(arena, "float64", gu0), hs: put(arena, "float64", h0) };
    expect(gruGatesPlan(H, false, wasm.gx, wasm.gu, wasm.hs)).not.toBeNull();
    gruGatesForward(B, H, wasm.gx, 0, wasm.gu, 0, wasm.hs, 0, B * H, false, gruGatesPlan(H, false, wasm.gx, wasm.gu, wasm.hs));
    expect(heap.gx[2 * G + H + 1]).toBe(Math.exp(-750));
    for (const key of ["gx", "hs"] as const) {
      for (let q = 0; q < heap[key].length; q++) if (!Object.is(wasm[key][q], heap[key][q])) expect.fail(`${key}[${q}] = ${wasm[key][q]} vs ${heap[key][q]}`);
    }
  });

  for (const fused of [false, true]) it(`float32 (f32x4)${fused ? ", fused" : ""}: z, r within 2 and ĥ within 3 float32 ulps of σ and tanh of the kernel's own float32 sums, h_t as float32 arithmetic gives it, for H ≡ 0 and 2 (mod 4), nothing written past the arrays`, () => {
    // Fused (fma: true): relaxed SIMD's multiply-adds, behind a V8 flag in Node 20 (as test/wasm.test.ts sets it).
    if (fused) setFlagsFromString("--experimental-wasm-relaxed-simd");
    try {
      const arena = WasmArena.create(undefined, fused)!;
      expect(arena.fused).toBe(fused);
      const rng = makeRng(`wasm-gru/forward/float32/${fused}`);
      const fr = Math.fround;
      let ran = 0;
      for (const [B, H] of SHAPES) {
        const G = 3 * H;
        const gx0 = preActivations(rng, B * G), gu0 = preActivations(rng, B * G), h0 = preActivations(rng, B * H);
        const gx = put(arena, "float32", gx0), gu = put(arena, "float32", gu0), hs = put(arena, "float32", [...h0, ...new Array<number>(B * H).fill(0)]);
        const x = Float32Array.from(gx0), u = Float32Array.from(gu0), hp = Float32Array.from(h0); // the inputs as float32
        expect(arena.gru32(B, H, gx.byteOffset, gu.byteOffset, hs.byteOffset, hs.byteOffset + 4 * B * H)).toBe(B);
        ran++;
        for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) {
          const g = b * G + j, s = b * H + j;
          const z = gx[g]!, r = gx[g + H]!, c = gx[g + 2 * H]!;
          const ez = ulps32(z, sig32(fr(x[g]! + u[g]!))), er = ulps32(r, sig32(fr(x[g + H]! + u[g + H]!)));
          const ec = ulps32(c, tanh32(fr(x[g + 2 * H]! + fr(r * u[g + 2 * H]!))));
          if (!(ez <= 2 && er <= 2 && ec <= 3)) expect.fail(`B=${B} H=${H} unit ${s}: z ${ez}, r ${er}, ĥ ${ec} ulps (gx ${x[g]}, ${x[g + H]}, ${x[g + 2 * H]}; gu ${u[g]}, ${u[g + H]}, ${u[g + 2 * H]})`);
          const h = fr(fr(z * hp[s]!) + fr(fr(1 - z) * c));
          if (!Object.is(hs[B * H + s], h)) expect.fail(`B=${B} H=${H} h[${s}] = ${hs[B * H + s]} vs ${h}`);
        }
        expect(Array.from(gu.subarray(0, B * G))).toEqual(Array.from(u));
        expect(Array.from(hs.subarray(0, B * H))).toEqual(Array.from(hp));
        untouchedPast(`B=${B} H=${H} gx`, gx, B * G);
        untouchedPast(`B=${B} H=${H} gu`, gu, B * G);
        untouchedPast(`B=${B} H=${H} hs`, hs, 2 * B * H);
      }
      expect(ran).toBe(SHAPES.length);
    } finally {
      if (fused) setFlagsFromString("--no-experimental-wasm-relaxed-simd");
    }
  });

  for (const dtype of ["float64", "float32"] as const) {
    it(`${dtype}: the backward (dX, dU and dh = d·z) bit for bit as ${dtype === "float64" ? "gruGatesBackward in TypeScript" : "its operations rounded to float32 one by one"}, nothing written past the arrays`, () => {
      const arena = WasmArena.create()!;
      const rng = makeRng(`wasm-gru/backward/${dtype}`);
      const Arr = dtype === "float32" ? Float32Array : Float64Array;
      let ran = 0;
      for (const [B, H] of SHAPES) {
        const G = 3 * H;
        // Activations as forward leaves them (σ in (0, 1), tanh in (-1, 1)), some at the ends; any gu, h and dh.
        const acts = Array.from({ length: B * G }, (_, q) => {
          const v = rng.uniform(), j = q % G;
          if (q % 11 === 0) return j >= 2 * H ? -1 : 1;
          if (q % 13 === 0) return 0;
          return j >= 2 * H ? 2 * v - 1 : v;
        });
        const gu0 = uniformArray(rng, B * G, -30, 30), h0 = uniformArray(rng, B * H, -5, 5), dh0 = uniformArray(rng, B * H, -5, 5);
        dh0[0] = 1e-300; dh0[1 % (B * H)] = -0; gu0[2 * H] = 1e300;
        const heap = { gx: Arr.from(acts), gu: Arr.from(gu0), hs: Arr.from(h0), dh: Arr.from(dh0), dX: new Arr(B * G), dU: new Arr(B * G) };
        const wasm = {
          gx: put(arena, dtype, heap.gx), gu: put(arena, dtype, heap.gu), hs: put(arena, dtype, heap.hs), dh: put(arena, dtype, heap.dh),
          dX: put(arena, dtype, heap.dX), dU: put(arena, dtype, heap.dU),
        };
        if (dtype === "float64") gruGatesBackward(B, H, heap.gx, 0, heap.gu, 0, heap.hs, 0, heap.dh, 0, heap.dX, 0, heap.dU, 0, false);
        else {
          // The kernel's operations in its order, each rounded to float32.
          const fr = Math.fround, { gx, gu, hs, dh, dX, dU } = heap;
          for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) {
            const g = b * G + j, s = b * H + j, d = dh[s]!, z = gx[g]!, r = gx[g + H]!, c = gx[g + 2 * H]!;
            const dzp = fr(fr(d * fr(hs[s]! - c)) * fr(z * fr(1 - z)));
            const dcp = fr(fr(d * fr(1 - z)) * fr(1 - fr(c * c)));
            const drp = fr(fr(dcp * gu[g + 2 * H]!) * fr(r * fr(1 - r)));
            dX[g] = dzp; dX[g + H] = drp; dX[g + 2 * H] = dcp;
            dU[g] = dzp; dU[g + H] = drp; dU[g + 2 * H] = fr(dcp * r);
            dh[s] = fr(d * z);
          }
        }
        const back = dtype === "float32" ? arena.gruBack32 : arena.gruBack64;
        back(B, H, wasm.gx.byteOffset, wasm.gu.byteOffset, wasm.hs.byteOffset, wasm.dh.byteOffset, wasm.dX.byteOffset, wasm.dU.byteOffset);
        ran++;
        for (const key of ["gx", "gu", "hs", "dh", "dX", "dU"] as const) {
          const got = wasm[key], want = heap[key];
          for (let q = 0; q < want.length; q++) if (!Object.is(got[q], want[q])) expect.fail(`B=${B} H=${H} ${key}[${q}] = ${got[q]} vs ${want[q]}`);
          untouchedPast(`B=${B} H=${H} ${key}`, got, want.length);
        }
      }
      expect(ran).toBe(SHAPES.length);
    });
  }

  it("dispatch: the kernels for arrays in one arena with σ gates and even H; TypeScript for hardSigmoid, odd H, heap arrays or mixed dtypes; a plan writes what the calls without one write", () => {
    const arena = WasmArena.create()!;
    const rng = makeRng("wasm-gru/dispatch");
    for (const dtype of ["float64", "float32"] as const) {
      const B = 3, H = 6, G = 3 * H, T = 3;
      const fill = (n: number, lo = -1, hi = 1) => { const a = arena.alloc(dtype, n); a.set(uniformArray(rng, n, lo, hi)); return a; };
      const gx0 = fill(T * B * G, -3, 3), gu = fill(T * B * G, -3, 3), hs0 = fill((T + 1) * B * H);
      const dh0 = fill(B * H), dX = arena.alloc(dtype, T * B * G), dU = arena.alloc(dtype, T * B * G);
      expect(gruGatesPlan(H, false, gx0, gu, hs0)).not.toBeNull();
      expect(gruGatesPlan(H, true, gx0, gu, hs0)).toBeNull(); // hard sigmoid runs in TypeScript
      expect(gruGatesPlan(7, false, gx0, gu, hs0)).toBeNull(); // odd H too
      expect(gruGatesPlan(H, false, gx0, gu, new Float64Array(hs0.length))).toBeNull();
      expect(gruGatesPlan(H, false, gx0, gu, arena.alloc(dtype === "float32" ? "float64" : "float32", hs0.length))).toBeNull();
      expect(gruGatesBackPlan(H, false, gx0, gu, hs0, dh0, dX, dU)).not.toBeNull();
      expect(gruGatesBackPlan(H, true, gx0, gu, hs0, dh0, dX, dU)).toBeNull();
      const run = (withPlans: boolean): Float[] => {
        const gx = arena.alloc(dtype, gx0.length), hs = arena.alloc(dtype, hs0.length), dh = arena.alloc(dtype, dh0.length);
        gx.set(gx0); hs.set(hs0); dh.set(dh0);
        const fp = withPlans ? gruGatesPlan(H, false, gx, gu, hs) : null, bp = withPlans ? gruGatesBackPlan(H, false, gx, gu, hs, dh, dX, dU) : null;
        for (let t = 0; t < T; t++) gruGatesForward(B, H, gx, t * B * G, gu, t * B * G, hs, t * B * H, (t + 1) * B * H, false, fp);
        const out: Float[] = [gx.slice(), hs.slice()];
        for (let t = T - 1; t >= 0; t--) {
          gruGatesBackward(B, H, gx, t * B * G, gu, t * B * G, hs, t * B * H, dh, 0, dX, t * B * G, dU, t * B * G, false, bp);
          out.push(dh.slice());
        }
        return [...out, dX.slice(), dU.slice()];
      };
      const a = run(true), b = run(false);
      for (let k = 0; k < a.length; k++) for (let q = 0; q < a[k]!.length; q++) {
        if (!Object.is(a[k]![q], b[k]![q])) expect.fail(`${dtype}: array ${k}[${q}] ${a[k]![q]} with plans vs ${b[k]![q]}`);
      }
    }
  });

  it("a GRU model on the SIMD backend: its workspace's gates and states are where the kernels find them, and its training steps match the TypeScript backend's (float64 to 1e-12)", () => {
    const make = (backend: "js" | "wasm") => {
      const m = new Sequential([new GRU({ units: 10, inputDim: 3, returnSequences: false }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 4, backend });
      m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
      return m;
    };
    const js = make("js"), wasm = make("wasm");
    const x = randomNormal([6, 7, 3], { seed: 5 }), y = Array.from({ length: 6 }, (_, i) => [i % 2]);
    for (let s = 0; s < 4; s++) {
      const a = js.trainOnBatch(x, y).loss, b = wasm.trainOnBatch(x, y).loss;
      expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-12 * a);
    }
    js.engine.params.forEach((v, i) => expect(Math.abs(wasm.engine.params[i]! - v)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(v))));
    const ws = wasm.engine.ws(0) as unknown as { gx: Float64Array; gu: Float64Array; hs: Float64Array; dh: Float64Array; dX: Float64Array; dU: Float64Array };
    expect(gruGatesPlan(10, false, ws.gx, ws.gu, ws.hs)).not.toBeNull();
    expect(gruGatesBackPlan(10, false, ws.gx, ws.gu, ws.hs, ws.dh, ws.dX, ws.dU)).not.toBeNull();
    const wj = js.engine.ws(0) as unknown as { gx: Float64Array; gu: Float64Array; hs: Float64Array };
    expect(gruGatesPlan(10, false, wj.gx, wj.gu, wj.hs)).toBeNull();
  });
});
