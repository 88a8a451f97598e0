/**
 * `npm run bench`: every bench suite in one run (see bench/README.md).
 *
 *   npm run bench                         everything (a few minutes)
 *   npm run bench -- --quick              fewer, smaller cases: a smoke test
 *   npm run bench -- matmul               only cases whose name or suite contains "matmul"
 *   npm run bench -- trainStep:S2 peer    several filters
 *   npm run bench -- embedding            the Embedding's backward at a 50,000-word vocabulary
 *   npm run bench -- gru                  the GRU's training step against the LSTM's, per FLOP
 *   npm run bench -- serve                predict against ONNX Runtime on our own ONNX export, per shape
 *   npm run bench -- charlm               one truncated-BPTT pass of the char-LM example, ours vs PyTorch
 *   npm run bench -- --json out.json      also write the results as JSON
 *   npm run bench -- --in-process         measure under tsx instead of plain node (see harness.ts)
 *
 * Suites: matmul, gates, lstm, adam, train-step, tbptt (one window) (with the matmul-only step and float32 vs float64),
 * embedding (the Embedding's backward at V = 1,000 / 10,000 / 50,000),
 * heap, peer (tfjs cpu and wasm), torch (PyTorch, when python3 can import torch; skipped otherwise),
 * parallel (one thread vs two, worker threads, training steps then TruncatedBPTT chunks; not with --quick), charlm (a TruncatedBPTT pass of the char-LM
 * example against PyTorch's stateful detach loop; not with --quick), serve (predict vs ONNX Runtime, in this process: last,
 * so that nothing else runs after onnxruntime-node is loaded).
 */
import { type Result, launch, writeJson, suiteSelected } from "./harness.js";
import { runMatmul } from "./matmul.js";
import { runGates } from "./gates.js";
import { runLstm } from "./lstm.js";
import { runAdam } from "./adam.js";
import { runTrainStep } from "./train-step.js";
import { runHeap } from "./heap.js";
import { runTbptt } from "./tbptt.js";
import { runEmbedding } from "./embedding.js";
import { runGru } from "./gru.js";
import { runPeer } from "./peer-tfjs.js";
import { runTorchPeer } from "./peer-torch.js";
import { main as runParallel, CASES as PARALLEL_CASES } from "./parallel.js";
import { main as runParallelTbptt, TBPTT_CASES } from "./parallel-tbptt.js";
import { runServe } from "./serve.js";
import { runCharLm } from "./charlm.js";

await launch(import.meta.url, async (opts) => {
  const results: Result[] = [];
  const extra: Record<string, unknown> = {};
  const t0 = performance.now();
  await runMatmul(opts, results);
  await runGates(opts, results);
  await runLstm(opts, results);
  await runAdam(opts, results);
  Object.assign(extra, await runTrainStep(opts, results));
  await runTbptt(opts, results);
  Object.assign(extra, await runEmbedding(opts, results));
  Object.assign(extra, await runGru(opts, results));
  if (suiteSelected(opts, "heap")) await runHeap(opts, extra);
  if (suiteSelected(opts, "peer", "tfjs")) Object.assign(extra, await runPeer(opts, results));
  if (suiteSelected(opts, "peer", "torch", "pytorch")) Object.assign(extra, await runTorchPeer(opts, results));
  if (!opts.quick && suiteSelected(opts, "parallel", "threads")) {
    console.log("\n## parallel: one thread vs two (worker threads share the batch)");
    const shapes = opts.filters.filter((f) => PARALLEL_CASES.some((c) => c.name === f));
    extra.parallel = runParallel(shapes);
  }
  if (!opts.quick && suiteSelected(opts, "parallel", "threads", "parallelTbptt")) {
    console.log("\n## parallel TBPTT: one trainSequence chunk on one thread vs two (the batch rows split for the whole sequence)");
    extra.parallelTbptt = runParallelTbptt(opts.filters.filter((f) => TBPTT_CASES.some((c) => f.startsWith(c.name))));
  }
  Object.assign(extra, await runCharLm(opts, results));
  Object.assign(extra, await runServe(opts, results));
  console.log(`\n(total ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  writeJson(opts, results, extra);
});
