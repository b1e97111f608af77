/**
 * An `infer` whose `signal` aborts on a node that never ends the job (red-team review s71,
 * finding 2): the job fails at once with the signal's reason, without waiting for the node's
 * `done` or the idle timeout, and the socket and its other jobs are left alone.
 */
import { StreamClient } from "../../client/stream_client.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { doneFrame, stallingServer, startFrame } from "./_stub_servers.ts";

/** Microtasks a rejection needs to pass from the abort listener to a caller's `then`. */
const SETTLE_MICROTASKS = 8;

/** Whether `promise` settles within a few microtasks: on what the caller did, not the network. */
async function settledAtOnce(promise: Promise<unknown>): Promise<boolean> {
  const settled = tracker(promise);
  for (let turn = 0; turn < SETTLE_MICROTASKS; turn++) await Promise.resolve();
  return settled();
}

/** The types of the frames a stub server received, in order. */
function types(messages: unknown[]): string[] {
  return messages.map((m) => (m as { type: string }).type);
}

Deno.test("aborting infer's signal on a wedged node fails that job at once with the signal's reason (not after the idle timeout) and sends cancel", async () => {
  const server = stallingServer(); // start, one token, then nothing: a wedged worker
  // The default idle timeout (2 minutes) is what the job waited for before.
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const abort = new AbortController();
    const job = client.infer({ prompt: "x" }, { signal: abort.signal });
    const reader = job.tokens.getReader();
    assertEquals((await reader.read()).value?.text, "A"); // running
    const reason = new DOMException("the caller's deadline", "TimeoutError");
    abort.abort(reason);
    assertEquals(await settledAtOnce(job.done), true, "done settles on the abort itself");
    assertEquals(await job.done.catch((error) => error), reason);
    assertEquals(await reader.read().catch((error) => error), reason);
    await eventually(() => types(server.messages).includes("cancel"), "the client's cancel");
    assertEquals(server.messages[1], { type: "cancel", id: job.id });
  } finally {
    await server.shutdown();
  }
});

/**
 * A `/v1/stream` stand-in that starts each job and sends one token, and ends a job (`done`,
 * `cancelled`) only when the test calls `finish(id)`: a node that answers a cancel late.
 */
function lateServer(): Deno.HttpServer<Deno.NetAddr> & { finish(id: string): void } {
  let socket: WebSocket | undefined;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const upgraded = Deno.upgradeWebSocket(request);
    socket = upgraded.socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "infer") return;
      socket!.send(JSON.stringify(startFrame(message.id)));
      socket!.send(
        JSON.stringify({ type: "token", id: message.id, index: 0, token_id: 65, text: "A" }),
      );
    };
    return upgraded.response;
  });
  return Object.assign(server, {
    finish(id: string) {
      socket!.send(JSON.stringify({ type: "token", id, index: 1, token_id: 66, text: "B" }));
      socket!.send(JSON.stringify(doneFrame(id, 2, "cancelled")));
    },
  });
}

Deno.test("an aborted job leaves the socket and its other jobs alone; its late tokens and done are dropped quietly", async () => {
  const server = lateServer();
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const abort = new AbortController();
    const aborted = client.infer({ prompt: "x", id: "a" }, { signal: abort.signal });
    const other = client.infer({ prompt: "y", id: "b" });
    await aborted.start;
    await other.start;
    abort.abort(new Error("gave up"));
    assertEquals((await aborted.done.catch((error) => error)).message, "gave up");
    // While the node has not ended "a", the id is still taken there: a new job under it fails.
    const reused = client.infer({ prompt: "z", id: "a" });
    assertEquals((await reused.done.catch((error) => error)).code, "duplicate_id");
    server.finish("a"); // the node's late answer to the cancel: a token and `done`
    server.finish("b"); // then the other job ends, on the same socket
    const done = await other.done;
    assertEquals(done.finish_reason, "cancelled");
    assertEquals(done.id, "b");
    const texts: string[] = [];
    for await (const token of other.tokens) texts.push(token.text);
    assertEquals(texts, ["A", "B"], "the other job's tokens, none of the aborted one's");
    // Once the node has ended "a", its id is free again.
    const again = client.infer({ prompt: "w", id: "a" });
    assertEquals((await again.start).id, "a");
    assert(!(await settledAtOnce(client.closed)), "the socket is still open");
  } finally {
    await server.shutdown();
  }
});
