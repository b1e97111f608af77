/**
 * Review s61 of the streaming client as a new library user meets it (`lib`): a `StreamClient`
 * held with `using` closes its socket when the block ends, as `Deno.FsFile` and the std
 * resources do, so a program that leaves the block early (a `throw`, a `return`, a `break` out
 * of its tokens) leaves no socket holding the process open; and `infer` takes an `AbortSignal`,
 * as `connect` and the inference ports' `submit` do, so `AbortSignal.timeout(ms)` bounds a job.
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { StreamClient, StreamClosedError } from "../../client/mod.ts";
import { doneFrame, stallingServer, startFrame } from "./_stub_servers.ts";
import { eventually } from "../_helpers/wait.ts";

/**
 * A `/v1/stream` stand-in that starts each job and sends one token, then waits; a `cancel` ends
 * the job with `done`, `cancelled`, as the node does. `messages` has what clients sent.
 */
function cancellableServer(): Deno.HttpServer<Deno.NetAddr> & { messages: unknown[] } {
  const messages: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    const send = (frame: unknown) => socket.send(JSON.stringify(frame));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type === "infer") {
        send(startFrame(message.id));
        send({ type: "token", id: message.id, index: 0, token_id: 65, text: "A" });
      } else if (message.type === "cancel") send(doneFrame(message.id, 1, "cancelled"));
    };
    return response;
  });
  return Object.assign(server, { messages });
}

Deno.test("review s61: a StreamClient held with `using` closes at the end of its block: its running job fails as after close(), and `closed` resolves", async () => {
  const server = stallingServer();
  try {
    let client: StreamClient;
    let done: Promise<unknown>;
    {
      using held = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
      client = held;
      const job = client.infer({ prompt: "x" });
      done = job.done;
      const reader = job.tokens.getReader();
      assertEquals((await reader.read()).value?.text, "A"); // the job is running
      reader.releaseLock();
    }
    const error = await assertRejects(() => done, StreamClosedError);
    assertEquals(error.message, "the client closed the socket");
    await client.closed;
    assert(server.messages.length === 1, "nothing but the infer was sent");
  } finally {
    await server.shutdown();
  }
});

Deno.test("review s61: a StreamClient is Disposable, so its type says `using` takes it", () => {
  // A compile-time check (deno check) as much as a run-time one: `Symbol.dispose` is a method.
  const dispose: (this: StreamClient) => void = StreamClient.prototype[Symbol.dispose];
  assertEquals(typeof dispose, "function");
});

Deno.test("review s61: aborting infer's signal cancels the running job, as cancel() does: the server is sent `cancel` and the job ends `cancelled`", async () => {
  const server = cancellableServer();
  try {
    using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const abort = new AbortController();
    const job = client.infer({ prompt: "x" }, { signal: abort.signal });
    const reader = job.tokens.getReader();
    assertEquals((await reader.read()).value?.text, "A"); // running
    abort.abort();
    await eventually(
      () => server.messages.some((m) => (m as { type: string }).type === "cancel"),
      "the client's cancel",
    );
    assertEquals(server.messages, [
      { prompt: "x", type: "infer", id: job.id },
      { type: "cancel", id: job.id },
    ]);
    assertEquals((await job.done).finish_reason, "cancelled");
    reader.releaseLock();
  } finally {
    await server.shutdown();
  }
});

Deno.test("review s61: infer with a signal already aborted sends nothing and fails the job at once with the signal's reason", async () => {
  const server = cancellableServer();
  try {
    using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const reason = new Error("gave up");
    const job = client.infer({ prompt: "x" }, { signal: AbortSignal.abort(reason) });
    assertEquals(await job.done.catch((error) => error), reason);
    assertEquals(await job.start.catch((error) => error), reason);
    // The next job on the socket is answered, so the first was never sent.
    const next = client.infer({ prompt: "y" });
    assertEquals((await next.start).id, next.id);
    assertEquals(server.messages, [{ prompt: "y", type: "infer", id: next.id }]);
  } finally {
    await server.shutdown();
  }
});
