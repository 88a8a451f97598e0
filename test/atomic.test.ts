/**
 * Atomicity: a training step whose loss, gradients, new weights or new optimizer state are not finite
 * throws NonFiniteError (or, with onNonFinite: "skip", is skipped) and leaves weights, optimizer state and
 * LSTM state bit for bit as they were, in trainOnBatch, fit and TruncatedBPTT, stateless and stateful.
 * A checkpoint being written when the process is SIGKILLed leaves the previous checkpoint intact.
 * Saturated inputs and logits give finite losses and gradients.
 */
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  Sequential, LSTM, Dense, Adam, SGD, NonFiniteError, TruncatedBPTT, type DType,
} from "../src/index.js";
import { loadCheckpointSync } from "../src/node/index.js";
import { Rng } from "../src/init.js";
import { snapshot, expectSame, randomSeq, randomLabels, smallModel } from "./helpers/rel-snapshot.js";
import { bigModel, setVersion } from "./helpers/rel-save-loop.js";

type Opt = () => Adam | SGD;

function model(o: { stateful?: boolean; opt?: Opt; dtype?: DType; zerosKernel?: boolean; onNonFinite?: "throw" | "skip"; batchSize?: number }): Sequential {
  const m = new Sequential([
    new LSTM({ units: 3, inputDim: 2, stateful: !!o.stateful, batchSize: o.stateful ? (o.batchSize ?? 2) : undefined, kernelInitializer: o.zerosKernel ? "zeros" : "glorotUniform" }),
    new Dense({ units: 1 }),
  ], { seed: 3, dtype: o.dtype ?? "float64" });
  m.compile({ optimizer: (o.opt ?? (() => new Adam()))(), loss: "meanSquaredError", onNonFinite: o.onNonFinite ?? "throw" });
  return m;
}

const rng = new Rng("atomic");
const X = randomSeq(rng, 2, 3, 2);
const Y = [[0.5], [-0.5]];

/** The failure modes of a step, each with the data and optimizer that provoke it and what it reports. */
const FAILURES: { name: string; opt?: Opt; zerosKernel?: boolean; dtype?: DType; x: number[][][]; y: number[][]; what: RegExp; noTrain?: boolean }[] = [
  { name: "labels that make the loss overflow (MSE, 1e200)", x: X, y: [[1e200], [0]], what: /non-finite loss/ },
  { name: "inputs of 1.7e308 that overflow the kernel's gradient", zerosKernel: true, x: X.map((r) => r.map((s) => s.map(() => 1.7e308))), y: [[100], [-100]], what: /non-finite gradients/, noTrain: true },
  { name: "a huge learning rate that makes the weights infinite (SGD 1e308)", opt: () => new SGD({ learningRate: 1e308 }), x: X, y: [[1000], [0]], what: /non-finite updated weights/, noTrain: true },
  { name: "a gradient whose square overflows Adam's v (weights stay finite)", x: X, y: [[9e153], [9e153]], what: /non-finite updated weights/ },
  // finite as a double (~1e40), infinite once stored in a Float32Array
  { name: "float32 weights pushed past 3.4e38 (SGD 1e37)", dtype: "float32", opt: () => new SGD({ learningRate: 1e37 }), x: X, y: [[1000], [0]], what: /non-finite updated weights/, noTrain: true },
];

describe("a non-finite step changes nothing", () => {
  for (const stateful of [false, true]) {
    for (const f of FAILURES) {
      it(`trainOnBatch, ${stateful ? "stateful" : "stateless"}: ${f.name}`, () => {
        const m = model({ stateful, opt: f.opt, zerosKernel: f.zerosKernel, dtype: f.dtype });
        const twin = model({ stateful, opt: f.opt, zerosKernel: f.zerosKernel, dtype: f.dtype });
        for (const mm of [m, twin]) { // state and Adam moments non-trivial (testOnBatch carries a stateful model's state)
          if (!f.noTrain) { mm.trainOnBatch(X, Y); mm.trainOnBatch(X, Y); }
          mm.testOnBatch(X, Y);
        }
        const before = snapshot(m);
        let err: unknown;
        try { m.trainOnBatch(f.x, f.y); } catch (e) { err = e; }
        expect(err).toBeInstanceOf(NonFiniteError);
        expect((err as Error).message).toMatch(f.what);
        expectSame("after the failed step", before, snapshot(m));
        // and the next good step is exactly the step the model would have taken without the bad one
        expect(m.trainOnBatch(X, Y)).toEqual(twin.trainOnBatch(X, Y));
        expectSame("after a good step", snapshot(twin), snapshot(m));
      });

      it(`trainOnBatch with onNonFinite "skip", ${stateful ? "stateful" : "stateless"}: ${f.name}`, () => {
        const m = model({ stateful, opt: f.opt, zerosKernel: f.zerosKernel, dtype: f.dtype, onNonFinite: "skip" });
        const thrower = model({ stateful, opt: f.opt, zerosKernel: f.zerosKernel, dtype: f.dtype });
        for (const mm of [m, thrower]) {
          if (!f.noTrain) mm.trainOnBatch(X, Y);
          mm.testOnBatch(X, Y);
        }
        const before = snapshot(m);
        const r = m.trainOnBatch(f.x, f.y);
        expect(typeof r.loss).toBe("number");
        expectSame("after the skipped step", before, snapshot(m));
        expect(() => thrower.trainOnBatch(f.x, f.y)).toThrow(f.what); // the same step in "throw" mode: it was a bad one
      });
    }
  }

  it("inputs from 1e300 to the largest double, either sign: every step is finite or rolled back whole", () => {
    const outcomes: Record<string, number> = { finite: 0, rolledBack: 0 };
    for (const stateful of [false, true]) for (const mag of [1e300, 1e306, 1e307, 1.7976931348623157e308]) for (const sign of [1, -1]) {
      const m = model({ stateful });
      m.trainOnBatch(X, Y);
      const x = X.map((r) => r.map((st) => st.map((v) => (v < 0 ? -sign : sign) * mag)));
      for (let s = 0; s < 3; s++) {
        const before = snapshot(m);
        try {
          m.trainOnBatch(x, [[1], [-1]]);
          expect(m.engine.params.every(Number.isFinite) && m.optimizer!.slots().every((sl) => sl.every(Number.isFinite))).toBe(true);
          outcomes.finite!++;
        } catch (e) {
          expect(e).toBeInstanceOf(NonFiniteError);
          expectSame(`${mag} rolled back`, before, snapshot(m));
          outcomes.rolledBack!++;
        }
      }
    }
    console.log(`huge inputs: ${JSON.stringify(outcomes)} steps`);
    expect(outcomes.finite! + outcomes.rolledBack!).toBe(48);
  });

  it("Adam with a huge learning rate: the step that first overflows the weights is rolled back", () => {
    const m = model({ opt: () => new Adam({ learningRate: 1e308 }) });
    let before = snapshot(m), steps = 0, err: unknown;
    for (; steps < 10; steps++) {
      before = snapshot(m);
      try { m.trainOnBatch(X, Y); } catch (e) { err = e; break; }
    }
    expect(steps).toBeGreaterThan(0); // the first step succeeds (|w| ≈ 1e308), a later one overflows
    expect(err).toBeInstanceOf(NonFiniteError);
    expectSame("rolled back", before, snapshot(m));
    expect(m.engine.params.every(Number.isFinite)).toBe(true);
  });

  it("float32, Adam 1e39 with small gradients: the first step (|Δw| ≈ lr, past 3.4e38) is rolled back, though ‖g‖ is far below 1", () => {
    // Adam's step is about lr whatever the gradient's size (m/√v ≈ ±1 when |g| ≫ ε), so the bound on it has to
    // divide by ε: a bound that followed ‖g‖ instead would call this step safe and skip the backup.
    const m = model({ dtype: "float32", opt: () => new Adam({ learningRate: 1e39 }) });
    const y = m.predict(X).data; // targets right at the predictions, nudged: small errors, small gradients
    const near = Array.from(y, (v) => [v + 1e-3]);
    const g = m.computeGradients(X, near).grads.flatMap((t) => Array.from(t.data));
    expect(Math.hypot(...g)).toBeLessThan(0.01);
    const before = snapshot(m);
    expect(() => m.trainOnBatch(X, near)).toThrow(/non-finite updated weights/);
    expectSame("rolled back", before, snapshot(m));
  });

  for (const stateful of [false, true]) {
    it(`fit, ${stateful ? "stateful" : "stateless"}: throws at the bad batch with the state of the batches before it; "skip" equals training without it`, async () => {
      const r = new Rng(`fit-atomic/${stateful}`);
      const x = randomSeq(r, 8, 3, 2);
      const y = randomLabels(r, 8, 1, false) as number[][];
      y[5] = [1e200]; // batch 2 (rows 4, 5) has a loss that overflows
      const batches = [0, 2, 4, 6].map((s) => [x.slice(s, s + 2), y.slice(s, s + 2)] as const);

      const m = model({ stateful });
      const twin = model({ stateful });
      const before = snapshot(m);
      await expect(m.fit(x, y, { batchSize: 2, epochs: 1, shuffle: false, verbose: 0 })).rejects.toThrow(/the step produced non-finite loss/);
      expect(snapshot(m).params).not.toBe(before.params); // the two good batches were applied
      twin.trainOnBatch(...batches[0]!);
      twin.trainOnBatch(...batches[1]!);
      expectSame("fit that threw vs the good batches", snapshot(twin), snapshot(m));

      const s = model({ stateful, onNonFinite: "skip" });
      const twin2 = model({ stateful, onNonFinite: "skip" });
      const losses: number[] = [];
      await s.fit(x, y, { batchSize: 2, epochs: 2, shuffle: false, verbose: 0, callbacks: [{ onBatchEnd: (_b, logs) => { losses.push(logs.loss!); } }] });
      for (let e = 0; e < 2; e++) for (const b of [0, 1, 3]) twin2.trainOnBatch(...batches[b]!);
      expect(losses.filter((l) => !Number.isFinite(l)).length).toBe(2); // the bad batch, once per epoch
      expectSame("skip vs training without the bad batch", snapshot(twin2), snapshot(s));
    });
  }

  it("TruncatedBPTT: a window with a non-finite loss throws and leaves weights, optimizer and model states unchanged", () => {
    const m = model({});
    const tb = new TruncatedBPTT(m, { windowLength: 2 });
    const x = randomSeq(new Rng("tb"), 2, 6, 2);
    tb.trainSequence(x, Y);
    const before = snapshot(m);
    expect(() => tb.trainSequence(x, [[1e200], [0]])).toThrow(NonFiniteError);
    expectSame("TBPTT", before, snapshot(m));
  });
});

describe("saturation: inputs and logits of ±1e3 give finite losses and gradients", () => {
  for (const dtype of ["float64", "float32"] as DType[]) {
    it(`${dtype}: inputs ±1e3 (every gate saturated), BCE and MSE, 20 training steps`, () => {
      const r = new Rng(`sat/${dtype}`);
      for (const bce of [true, false]) {
        const m = smallModel({ F: 3, units: [4, 3], D: 2, perStep: true, dtype, seed: 5, head: bce ? "sigmoid" : "linear" });
        m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: bce ? "binaryCrossentropy" : "meanSquaredError" });
        const x = randomSeq(r, 4, 6, 3).map((b) => b.map((s) => s.map((v) => (v < 0 ? -1e3 : 1e3))));
        const y = bce ? randomLabels(r, 4, 2, true, 6) : (randomLabels(r, 4, 2, false, 6) as number[][][]).map((b) => b.map((s) => s.map((v) => v * 1e3)));
        const g = m.computeGradients(x, y);
        expect(Number.isFinite(g.loss)).toBe(true);
        for (const t of [...g.grads, g.inputGrad]) expect(t.data.every(Number.isFinite)).toBe(true);
        for (let s = 0; s < 20; s++) expect(Number.isFinite(m.trainOnBatch(x, y).loss)).toBe(true);
        expect(m.engine.params.every(Number.isFinite)).toBe(true);
        expect(m.optimizer!.slots().every((sl) => sl.every(Number.isFinite))).toBe(true);
      }
    });

    it(`${dtype}: BCE from logits of ±1e3 against the opposite labels: loss exactly |z|, gradients finite`, () => {
      const m = smallModel({ F: 1, units: [2], D: 1, dtype, head: "sigmoid" });
      m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
      const w = m.getWeights();
      for (const z of [1e3, -1e3, 40, -40]) {
        // kernel 0 and bias z: every logit is z whatever the LSTM does
        m.setWeights([w[0]!, w[1]!, w[2]!, [[0], [0]], [z]]);
        const y = z > 0 ? [[0], [0]] : [[1], [1]];
        const g = m.computeGradients([[[0.3]], [[-0.7]]], y);
        // max(z, 0) - z·y + log1p(exp(-|z|)) = |z| + log1p(exp(-|z|)) for the wrong label
        expect(g.loss).toBeCloseTo(Math.abs(z) + Math.log1p(Math.exp(-Math.abs(z))), dtype === "float64" ? 10 : 4);
        for (const t of g.grads) expect(t.data.every(Number.isFinite)).toBe(true);
        expect(Math.abs(g.grads[4]!.data[0]!)).toBeCloseTo(1, 6); // dL/dbias = mean(σ(z) - y) = ±1
      }
    });
  }
});

describe("a checkpoint killed mid-write", () => {
  it("SIGKILL at random moments while saving a 3.5 MB checkpoint in a loop: the file always loads as one complete version", async () => {
    const ROUNDS = 4;
    const dir = mkdtempSync(join(tmpdir(), "longshort-kill-"));
    const target = join(dir, "run.ckpt");
    const script = resolve(import.meta.dirname, "helpers/rel-save-loop.ts");
    const reference = bigModel();
    const delays = new Rng("kill-delays");
    let interrupted = 0, midWrite = 0;
    const seen: number[] = [];
    let child: ReturnType<typeof spawn> | null = null;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const first = 1000 * (round + 1);
        child = spawn(process.execPath, ["--import", "tsx", script, target, String(first), round % 2 ? "async" : "sync"], {
          cwd: resolve(import.meta.dirname, ".."), stdio: ["ignore", "pipe", "inherit"],
        });
        let last = -1;
        const exited = new Promise<void>((done) => child!.on("exit", () => done()));
        await new Promise<void>((ready, fail) => {
          let out = "";
          child!.stdout!.on("data", (d: Buffer) => {
            out += d.toString();
            const lines = out.trim().split("\n");
            last = Number(lines[lines.length - 1]);
            if (last >= first) ready();
          });
          child!.on("exit", (code) => fail(new Error(`child exited (${code}) before its first save`)));
        });
        if (round % 2 === 0) {
          // Kill at a random moment of a later save (one save is ~20–60 ms: encode, write, fsync, rename).
          const target0 = last + 1 + delays.int(3);
          await new Promise<void>((r) => { const t = setInterval(() => { if (last >= target0) { clearInterval(t); r(); } }, 1); });
          await new Promise((r) => setTimeout(r, delays.int(40)));
        } else {
          // Kill as soon as a temporary file is seen: in the middle of writing or syncing it.
          await new Promise<void>((r) => {
            const poll = (): void => { if (readdirSync(dir).some((f) => f.endsWith(".tmp"))) r(); else setImmediate(poll); };
            poll();
          });
        }
        child.kill("SIGKILL");
        await exited;
        child = null;
        const temps = readdirSync(dir).filter((f) => f.endsWith(".tmp"));
        interrupted += temps.length; // a kill mid-write leaves its temporary behind (never the target)
        if (round % 2 === 1) midWrite += temps.length > 0 ? 1 : 0;
        for (const t of temps) rmSync(join(dir, t));
        const m = loadCheckpointSync(target); // must load: never a torn file
        const k = m.optimizer!.iterations;
        expect(k).toBeGreaterThanOrEqual(last);   // at least the last save reported done...
        expect(k).toBeLessThanOrEqual(last + 1);  // ...or the one in flight, if its rename got through
        setVersion(reference, k);
        expectSame(`round ${round}: version ${k}`, snapshot(reference), snapshot(m));
        seen.push(k);
      }
    } finally {
      child?.kill("SIGKILL"); // a failed or timed-out round must not leave its save loop running
      rmSync(dir, { recursive: true, force: true });
    }
    expect(midWrite, "the kills timed on a temporary file did land mid-write").toBeGreaterThanOrEqual(1);
    console.log(`kill-during-save: versions found after each SIGKILL ${seen.join(", ")}; kills that left a half-written temporary file: ${interrupted} of ${ROUNDS}`);
  }, 30_000);
});
