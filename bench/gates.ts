/**
 * The fused LSTM gate kernels for one timestep of B rows × H units, at the (B, H) of each shape:
 * lstmGatesForward (3 σ, 2 tanh and the cell update per unit) and lstmGatesBackward.
 * Forward is checked against naiveLstmStep; backward against a central difference of the naive step
 * on a few entries. No FLOP model applies (transcendental-bound); the note gives ns per unit.
 */
import { lstmGatesForward, lstmGatesBackward } from "../src/tensor/kernels.js";
import { naiveLstmStep } from "../src/tensor/naive.js";
import {
  type Case, type Options, type Spec, type Result, SHAPES, rng, randomArray, runSpecs, assertClose, standalone,
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

export function gatesSpecs(opts: Options): Spec[] {
  const shapes = opts.quick ? SHAPES.filter((s) => s.name === "S0" || s.name === "S2") : SHAPES;
  const out: Spec[] = [];
  for (const s of shapes) {
    out.push({ name: `lstmGatesForward:B=${s.B},H=${s.H} (${s.name})`, group: "gates", build: () => gatesForwardCase(s.B, s.H, s.name) });
    out.push({ name: `lstmGatesBackward:B=${s.B},H=${s.H} (${s.name})`, group: "gates", build: () => gatesBackwardCase(s.B, s.H, s.name) });
  }
  return out;
}

export async function runGates(opts: Options, results: Result[]): Promise<void> {
  runSpecs(opts, "gates: one timestep of the fused gate kernels (float64)", gatesSpecs(opts), results);
}

await standalone("gates", import.meta.url, runGates);
