/**
 * Child process for the kill-during-save test (test/atomic.test.ts): saves version after version of a
 * large checkpoint to one path, forever, printing each version number once its save has returned.
 * Version k is recognisable bit for bit: params[i] = k + i·2⁻²⁰, Adam m[i] = -k, v[i] = k + 1, and the
 * optimizer's step count is k.
 *
 * Usage: node --import tsx rel-save-loop.ts <target> <firstVersion> <sync|async>
 */
import { Sequential, LSTM, Dense, Adam } from "../../src/index.js";
import { saveCheckpoint, saveCheckpointSync } from "../../src/node/index.js";
import { pathToFileURL } from "node:url";

export const UNITS = 160;
export const INPUT = 8;

/** The model every version starts from (the test builds the same one to compare). */
export function bigModel(): Sequential {
  const m = new Sequential([new LSTM({ units: UNITS, inputDim: INPUT }), new Dense({ units: 1 })], { seed: "kill" });
  m.compile({ optimizer: new Adam(), loss: "meanSquaredError" });
  return m;
}

/** Writes version k into the model. */
export function setVersion(m: Sequential, k: number): void {
  const p = m.engine.params;
  for (let i = 0; i < p.length; i++) p[i] = k + i * 2 ** -20;
  const [mm, v] = m.optimizer!.slots() as [Float64Array, Float64Array];
  mm.fill(-k);
  v.fill(k + 1);
  m.optimizer!.iterations = k;
}

async function main(): Promise<void> {
  const [target, first, mode] = process.argv.slice(2) as [string, string, string];
  const m = bigModel();
  for (let k = Number(first); ; k++) {
    setVersion(m, k);
    if (mode === "async") await saveCheckpoint(m, target);
    else saveCheckpointSync(m, target);
    process.stdout.write(`${k}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
