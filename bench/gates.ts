/**
 * The fused LSTM gate kernels for one timestep of B rows × H units, at the (B, H) of each shape:
 * lstmGatesForward (3 σ, 2 tanh and the cell update per unit) and lstmGatesBackward.
 * Forward is checked against naiveLstmStep; backward against a central difference of the naive step
 * on a few entries. No FLOP model applies (transcendental-bound); the note gives ns per unit.
 *
 * `wasmGates…` / `wasmGates…32`: the same calls on arrays in a WebAssembly arena, which the SIMD kernels of
 * src/wasm/gates.ts run (float64: bit for bit as the TypeScript kernel, so held to the same 1e-14; float32:
 * in float32 arithmetic, held to 1e-6 of the float64 naive step on the same float32 inputs). They run after
 * the TypeScript cases, which therefore see float64 arrays only.
 */
import { lstmGatesForward, lstmGatesBackward } from "../src/tensor/kernels.js";
import { WasmArena } from "../src/wasm/arena.js";
import { naiveLstmStep } from "../src/tensor/naive.js";
import {
  type Case, type Options, type Spec, type Result, SHAPES, rng, randomArray, runSpecs, assertClose, standalone, FMA,
} from "./harness.js";

function perUnit(B: number, H: number): (ms: number) => string {
  return (ms) => `${((ms * 1e6) / (B * H)).toFixed(1)} ns/unit`;
}

export function gatesForwardCase(B: number, H: number, label: string): Case {
  const r = rng(11), G = 4 * H, BH = B * H;
  const z0 = randomArray(Float64Array, B * G, r, 3), z = new Float64Array(B * G);
  const cPrev = randomArray(Float64Array, BH, r, 2);
  const c = new Float64Array(BH), tanhC = new Float64Array(BH), h = new Float64Array(BH);
  return {
    name: `lstmGatesForward:B=${B},H=${H} (${label})`,
    group: "gates",
    check: () => {
      z.set(z0);
      lstmGatesForward(B, H, z, 0, cPrev, 0, c, 0, tanhC, 0, h, 0, false);
      const ref = naiveLstmStep(B, H, z0, cPrev);
      assertClose("activations", z, ref.gates, 1e-14);
      assertClose("c", c, ref.c, 1e-14);
      assertClose("h", h, ref.h, 1e-14);
    },
    // The kernel overwrites z with the activations, so each op restores the pre-activations first
    // (a memcpy of B·4H values, a few percent of the op).
    run: () => {
      z.set(z0);
      lstmGatesForward(B, H, z, 0, cPrev, 0, c, 0, tanhC, 0, h, 0, false);
    },
    note: perUnit(B, H),
  };
}

export function gatesBackwardCase(B: number, H: number, label: string): Case {
  const r = rng(12), G = 4 * H, BH = B * H;
  const z0 = randomArray(Float64Array, B * G, r, 3), gates = Float64Array.from(z0);
  const cPrev = randomArray(Float64Array, BH, r, 2);
  const c = new Float64Array(BH), tanhC = new Float64Array(BH), h = new Float64Array(BH);
  lstmGatesForward(B, H, gates, 0, cPrev, 0, c, 0, tanhC, 0, h, 0, false);
  const dh = randomArray(Float64Array, BH, r), dc0 = randomArray(Float64Array, BH, r);
  const dc = Float64Array.from(dc0), dz = new Float64Array(B * G);
  return {
    name: `lstmGatesBackward:B=${B},H=${H} (${label})`,
    group: "gates",
    check: () => {
      dc.set(dc0);
      lstmGatesBackward(B, H, gates, 0, cPrev, 0, tanhC, 0, dh, 0, dc, 0, dz, 0);
      // L = <dh, h> + <dc0, c>; dz must be dL/dz. Central differences of the naive step on 8 entries.
      const loss = (zz: Float64Array): number => {
        const s = naiveLstmStep(B, H, zz, cPrev);
        let v = 0;
        for (let k = 0; k < BH; k++) v += dh[k]! * s.h[k]! + dc0[k]! * s.c[k]!;
        return v;
      };
      const pick = rng(13), eps = 1e-6, zz = Float64Array.from(z0);
      for (let n = 0; n < 8; n++) {
        const k = Math.floor(pick() * B * G);
        zz[k] = z0[k]! + eps; const up = loss(zz);
        zz[k] = z0[k]! - eps; const down = loss(zz);
        zz[k] = z0[k]!;
        const fd = (up - down) / (2 * eps);
        if (!(Math.abs(fd - dz[k]!) <= 1e-6 * (1 + Math.abs(fd)))) throw new Error(`dz[${k}] = ${dz[k]} vs finite difference ${fd}`);
      }
    },
    run: () => lstmGatesBackward(B, H, gates, 0, cPrev, 0, tanhC, 0, dh, 0, dc, 0, dz, 0),
    note: perUnit(B, H),
  };
}

/** Forward or backward on the SIMD backend: arrays allocated in an arena, values as the TypeScript cases'. */
export function wasmGatesCase(B: number, H: number, label: string, dtype: "float32" | "float64", which: "Forward" | "Backward"): Case {
  const arena = WasmArena.create(undefined, FMA); // with --fma, the fused float32 kernel (its exp's multiply-adds)
  if (!arena) throw new Error("no WebAssembly SIMD with shared memory here");
  const r = rng(11), G = 4 * H, BH = B * H, f32 = dtype === "float32";
  const inArena = (v: ArrayLike<number>): Float32Array | Float64Array => { const a = arena.alloc(dtype, v.length); a.set(v); return a; };
  const z0 = inArena(randomArray(Float64Array, B * G, r, 3)), cPrev = inArena(randomArray(Float64Array, BH, r, 2));
  const z = arena.alloc(dtype, B * G), c = arena.alloc(dtype, BH), tanhC = arena.alloc(dtype, BH), h = arena.alloc(dtype, BH);
  const tol = f32 ? 1e-6 : 1e-14, name = `wasmGates${which}${f32 ? "32" : ""}:B=${B},H=${H} (${label})`;
  /** The forward from z0 (each op restores the pre-activations first, as the TypeScript case does). */
  const forward = (): void => {
    z.set(z0);
    lstmGatesForward(B, H, z, 0, cPrev, 0, c, 0, tanhC, 0, h, 0, false);
  };
  if (which === "Forward") {
    return {
      name, group: "gates",
      check: () => {
        forward();
        const ref = naiveLstmStep(B, H, Float64Array.from(z0), Float64Array.from(cPrev));
        assertClose("activations", z, ref.gates, tol);
        assertClose("c", c, ref.c, tol);
        assertClose("h", h, ref.h, tol);
      },
      run: forward,
      note: perUnit(B, H),
    };
  }
  // The backward reads the forward's activations (z after a forward call), c_{t-1} and tanh(c_t).
  forward();
  const dh = inArena(randomArray(Float64Array, BH, r)), dc0 = inArena(randomArray(Float64Array, BH, r));
  const dc = arena.alloc(dtype, BH), dz = arena.alloc(dtype, B * G);
  return {
    name, group: "gates",
    check: () => {
      dc.set(dc0);
      lstmGatesBackward(B, H, z, 0, cPrev, 0, tanhC, 0, dh, 0, dc, 0, dz, 0);
      // The same formulas in float64 on the same (rounded) inputs, entry by entry.
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < H; j++) {
          const g = b * G + j, k = b * H + j;
          const i = z[g]!, f = z[g + H]!, gg = z[g + 2 * H]!, o = z[g + 3 * H]!, tc = tanhC[k]!;
          const dcv = dc0[k]! + dh[k]! * o * (1 - tc * tc);
          const want = [dcv * gg * i * (1 - i), dcv * cPrev[k]! * f * (1 - f), dcv * i * (1 - gg * gg), dh[k]! * tc * o * (1 - o)];
          for (let q = 0; q < 4; q++) {
            const got = dz[g + q * H]!;
            if (!(Math.abs(got - want[q]!) <= tol * (Math.abs(want[q]!) + 1))) throw new Error(`dz[${g + q * H}] = ${got} vs ${want[q]}`);
          }
        }
      }
    },
    run: () => lstmGatesBackward(B, H, z, 0, cPrev, 0, tanhC, 0, dh, 0, dc, 0, dz, 0),
    note: perUnit(B, H),
  };
}

export function gatesSpecs(opts: Options): Spec[] {
  const shapes = opts.quick ? SHAPES.filter((s) => s.name === "S0" || s.name === "S2") : SHAPES;
  const out: Spec[] = [];
  for (const s of shapes) {
    out.push({ name: `lstmGatesForward:B=${s.B},H=${s.H} (${s.name})`, group: "gates", build: () => gatesForwardCase(s.B, s.H, s.name) });
    out.push({ name: `lstmGatesBackward:B=${s.B},H=${s.H} (${s.name})`, group: "gates", build: () => gatesBackwardCase(s.B, s.H, s.name) });
  }
  // The SIMD kernels after every TypeScript case (see the header).
  for (const dtype of ["float64", "float32"] as const) {
    const suffix = dtype === "float32" ? "32" : "";
    for (const s of shapes) {
      if (s.H % 2 !== 0) continue; // odd unit counts run in TypeScript
      for (const which of ["Forward", "Backward"] as const) {
        out.push({
          name: `wasmGates${which}${suffix}:B=${s.B},H=${s.H} (${s.name})`, group: "gates",
          build: () => wasmGatesCase(s.B, s.H, s.name, dtype, which),
        });
      }
    }
  }
  return out;
}

export async function runGates(opts: Options, results: Result[]): Promise<void> {
  runSpecs(opts, "gates: one timestep of the fused gate kernels (float64; wasm…32: float32)", gatesSpecs(opts), results);
}

await standalone("gates", import.meta.url, runGates);
