/**
 * A child process for `read_idle_cut_log_test.ts`: the real app and server with the read slots
 * wired as `node/_http_api.ts` wires them (the node's log and counters), a stored public file far
 * larger than the socket buffers, and one client that asks for it over `GET /v1/files/{cid}`,
 * reads the headers, and stops reading. Once its read is overdue (`READ_IDLE_TIMEOUT_MS` on fake
 * timers), the same client's next read, past its limit of one, cuts it. What `Deno.serve` prints
 * of an errored body goes to this process's stderr, which the test reads; stdout gets one JSON
 * line: the file's path, the cuts counted, the second read's status, and whether the first
 * client's connection ended short of the `Content-Length` it was told.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { lineLogger } from "../../node/log_format.ts";
import { createApp } from "../../server/app.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { READ_IDLE_TIMEOUT_MS } from "../../server/read_slot_body.ts";
import { ReadSlots } from "../../server/read_slots.ts";
import { serve } from "../../server/serve.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";

/**
 * The file's size: far more than the socket buffers between the node and a client that reads
 * nothing hold over loopback (a few MiB each way), so the node stops pulling its body.
 */
const FILE_BYTES = 32 * 1024 * 1024;

const dir = await Deno.makeTempDir();
const system = new ActorSystem({ name: "read-idle-cut-child" });
const storage = await system.spawn<StorageMessage>({
  name: "node/storage",
  factory: () => new StorageActor({ dir }) as never,
});
const port = storageGateway(storage);
const bytes = new Uint8Array(FILE_BYTES).map((_, i) => i % 251);
const { cid } = await port.put(ReadableStream.from([bytes]), { name: "big.bin" });

// The node's log, as `node/http_listener.ts` gives it to the app and the server: in the format
// the first argument names (`json` as --log-format json; default text).
const log = lineLogger(Deno.args[0] === "json" ? "json" : "text", (line) => console.error(line));
const stats = new EdgeStats();
const timers = new FakeTimers();
// One read per client and none waiting: the next read is refused (429) unless one is overdue.
const reads = new ReadSlots({ stats, log, timers, maxReadsPerClient: 1, maxWaitersPerClient: 0 });
const app = createApp({ inference: {} as InferencePort, edge: {}, stats, log });
app.route("/v1", fileRoutes(() => port, { reads }));
const abort = new AbortController();
const server = serve({ app, port: 0, signal: abort.signal, log });
const url = new URL(server.url);
const path = `/v1/files/${cid}`;

const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(url.port) });
await conn.write(
  new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`),
);
// The headers, then nothing more read until the cut.
const buffer = new Uint8Array(1 << 16);
let head = "";
let received = 0;
while (!head.includes("\r\n\r\n")) {
  const n = await conn.read(buffer);
  if (n === null) throw new Error("the connection closed before the headers");
  head += new TextDecoder().decode(buffer.subarray(0, n));
}
received = head.length - head.indexOf("\r\n\r\n") - 4;
const declared = Number(/^content-length: (\d+)\r$/im.exec(head)?.[1]);

// Each try fires the idle cut-off of a read whose client owes a pull (marking it overdue once the
// socket buffers are full and no pull comes), then asks again as the same client: refused while
// no read of its is overdue, served once its first read is cut.
let second = 0;
await eventually(async () => {
  timers.fireFor(READ_IDLE_TIMEOUT_MS);
  const response = await fetch(`${server.url.replace(/\/$/, "")}${path}`, {
    headers: { range: "bytes=0-0" },
  });
  second = response.status;
  await response.body?.cancel();
  return second !== 429;
}, "the idle read cut for the same client's next one");

// Back from its pause, the first client reads on to the connection's end.
try {
  for (let n; (n = await conn.read(buffer)) !== null;) received += n;
} catch {
  // Reset rather than closed: short all the same.
}
conn.close();
abort.abort();
await server.finished;
await system.shutdown();
await Deno.remove(dir, { recursive: true });
console.log(JSON.stringify({
  path,
  idleCuts: stats.idleTimeouts,
  second,
  short: Number.isFinite(declared) && received < declared,
}));
