/**
 * `longshort/node`: the whole portable API of `longshort`, plus what needs Node: checkpoint files written
 * atomically, worker threads for both cores, and fit's progress on the terminal (process.stdout: a live
 * bar on a TTY, one line per epoch otherwise). This file only re-exports, and registers the terminal.
 */
import { setTerminal } from "../progress.js";

setTerminal({
  write: (text: string) => { process.stdout.write(text); },
  get live() { return Boolean(process.stdout.isTTY); },
});

export * from "../index.js";
export { saveCheckpoint, loadCheckpoint, saveCheckpointSync, loadCheckpointSync } from "./checkpoint-files.js";
export { saveSafetensors, loadSafetensors, saveOnnx, saveTfjs, loadTfjs } from "./interop-files.js";
export { setThreads, nodeThreads, type ThreadOptions } from "./threads.js";
