/**
 * The entry of a Node worker thread (started by node/threads.ts): feeds the replica of threads/replica.ts
 * with the main thread's messages, and tells the main thread when this thread ends.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Replica } from "../threads/replica.js";
import { type Message, type WorkerInit, markExited } from "../threads/protocol.js";

const init = workerData as WorkerInit;
// Runs inside this thread as it ends (process.exit or an uncaught error), while the main thread may be
// blocked in Atomics.wait where the Worker's own 'exit' event cannot reach it.
process.on("exit", (code) => markExited(new Int32Array(init.ctrl), code));
const replica = new Replica(init, (code) => process.exit(code));
parentPort!.on("message", (msg: Message) => replica.handle(msg));
