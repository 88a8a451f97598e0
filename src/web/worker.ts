/**
 * The script of longshort's Web Workers (bundled with everything it needs into dist/web/worker.js): the
 * first message hands it the replica's start data, every later one is a command for threads/replica.ts.
 */
import { Replica } from "../threads/replica.js";
import { type Message, type WorkerInit, markExited } from "../threads/protocol.js";

/** What this file needs of a worker's global scope. */
const scope = globalThis as unknown as {
  addEventListener(type: "message", listener: (event: { data: Message | { type: "init"; init: WorkerInit } }) => void): void;
  close(): void;
};

let replica: Replica | null = null;
scope.addEventListener("message", (event) => {
  const msg = event.data;
  if (msg.type === "init") {
    const ctrl = new Int32Array(msg.init.ctrl);
    replica = new Replica(msg.init, (code) => {
      // A Web Worker cannot stop itself mid-task: mark it ended, close it, and abandon the task.
      markExited(ctrl, code);
      scope.close();
      throw new Error(`the worker exited with code ${code}`);
    });
    return;
  }
  replica?.handle(msg);
});
