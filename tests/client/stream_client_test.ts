/**
 * `StreamClient` against a bare WebSocket server: what a job started on a socket that is no
 * longer open does.
 */
import { assertEquals, assertRejects } from "../server/_assert.ts";
import { StreamClient, StreamClosedError } from "../../client/stream_client.ts";

/** A `/v1/stream` stand-in that answers nothing; with `closeOnOpen`, it closes each socket. */
function serveSockets(closeOnOpen: boolean): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    if (closeOnOpen) socket.onopen = () => socket.close();
    return response;
  });
}

/**
 * Whether `promise` settles before any further event is handled: a few microtasks, no
 * macrotask, so a close event still on its way cannot be what settles it.
 */
async function settledAtOnce(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let turn = 0; turn < SETTLE_MICROTASKS; turn++) await Promise.resolve();
  return settled;
}

/** Microtasks a promise rejected before it was returned needs to reach a `then` and report. */
const SETTLE_MICROTASKS = 3;

/** Assert `job` failed with {@link StreamClosedError} everywhere: start, done and tokens. */
async function assertClosedJob(job: ReturnType<StreamClient["infer"]>): Promise<void> {
  assertEquals(await settledAtOnce(job.done), true, "done settles at once");
  await assertRejects(() => job.start, StreamClosedError);
  await assertRejects(() => job.done, StreamClosedError);
  await assertRejects(() => job.tokens.getReader().read(), StreamClosedError);
}

Deno.test("StreamClient.infer on a socket the server closed fails at once with StreamClosedError (start, done, tokens) and registers nothing", async () => {
  const server = serveSockets(true);
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    await client.closed;
    await assertClosedJob(client.infer({ id: "late", prompt: "x", max_tokens: 1 }));
    // Nothing was registered: the same id is free again.
    await assertClosedJob(client.infer({ id: "late", prompt: "x", max_tokens: 1 }));
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient.infer on a socket the client is closing fails at once with StreamClosedError", async () => {
  const server = serveSockets(false);
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    client.close();
    const job = client.infer({ prompt: "x", max_tokens: 1 });
    await assertClosedJob(job);
    assertEquals((await job.done.catch((error) => error)).message, "the client closed the socket");
    await client.closed;
  } finally {
    await server.shutdown();
  }
});
