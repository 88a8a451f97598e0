/**
 * Peak memory of truncated BPTT does not grow with the sequence: trains LSTM(32) → Dense(1) with
 * TruncatedBPTT(window 50) on one long sequence fed in chunks of 1,000 steps, in a fresh process per
 * length, and prints each process's peak RSS (process.resourceUsage().maxRSS).
 *
 *   npx tsx bench/tbptt-memory.ts            # 2,000 vs 100,000 steps
 *   npx tsx bench/tbptt-memory.ts --child N  # one run (used internally)
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Sequential, LSTM, Dense, TruncatedBPTT, zeros } from "../src/index.js";

const B = 8, F = 4, H = 32, WINDOW = 50, CHUNK = 1000;

function child(T: number): void {
  const model = new Sequential([new LSTM({ units: H, inputDim: F }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1, backend: "js" });
  model.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
  const tbptt = new TruncatedBPTT(model, { windowLength: WINDOW });
  const x = zeros([B, CHUNK, F]), y = zeros([B, 1]);
  let s = 0, windows = 0, last = 0;
  const t0 = performance.now();
  for (let start = 0; start < T; start += CHUNK) {
    // The chunk is made in place, so the sequence never exists in memory as a whole.
    for (let i = 0; i < x.data.length; i++) x.data[i] = Math.sin(0.001 * (start * B * F + i) + (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let b = 0; b < B; b++) y.data[b] = b % 2;
    const r = tbptt.trainSequence(x, y, { endOfSequence: start + CHUNK >= T });
    windows += r.windows;
    last = r.loss;
  }
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ steps: T, windows, lastLoss: last, seconds: ms / 1000, maxRSSMiB: process.resourceUsage().maxRSS / 1024 }));
}

function main(): void {
  const self = fileURLToPath(import.meta.url);
  const results: Record<string, number>[] = [];
  for (const T of [2_000, 100_000]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", self, "--child", String(T)], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`child ${T} failed: ${r.stderr}`);
    const line = JSON.parse(r.stdout.trim().split("\n").pop()!);
    results.push(line);
    console.log(`tbptt-memory:T=${T},B=${B},F=${F},H=${H},window=${WINDOW}  windows ${line.windows}  ${line.seconds.toFixed(2)} s  peak RSS ${line.maxRSSMiB.toFixed(1)} MiB`);
  }
  const ratio = results[1]!.maxRSSMiB! / results[0]!.maxRSSMiB!;
  console.log(`peak RSS ratio 100,000 / 2,000 steps: ${ratio.toFixed(3)} (target ≤ 1.2)`);
}

const ci = process.argv.indexOf("--child");
if (ci >= 0) child(Number(process.argv[ci + 1]));
else main();
