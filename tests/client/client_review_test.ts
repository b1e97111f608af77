/**
 * The streaming client as its users meet it: a close that a node never answers, a job that
 * fails after some of its tokens arrived, and the `./client` entry point's documentation.
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { StreamClient, StreamClosedError, StreamRequestError } from "../../client/stream_client.ts";
import { runInfer } from "../../client/infer_command.ts";
import { wedgedServer } from "./_stub_servers.ts";

/**
 * Whether `promise` settles within a few microtasks: no event (a close frame, a TCP reset) can
 * arrive meanwhile, so it settled on what the caller did, not on the network.
 */
async function settledAtOnce(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let turn = 0; turn < SETTLE_MICROTASKS; turn++) await Promise.resolve();
  return settled;
}

/** Microtasks a rejection passes through a reader and a `then` before it reports. */
const SETTLE_MICROTASKS = 8;

/** The texts `tokens` yields before it ends, and the error it ends with, if any. */
async function readAll(tokens: ReadableStream<{ text: string }>) {
  const texts: string[] = [];
  try {
    for await (const token of tokens) texts.push(token.text);
    return { texts, error: undefined };
  } catch (error) {
    return { texts, error };
  }
}

Deno.test("StreamClient.close() fails the running jobs at once (StreamClosedError), without waiting for a node that never answers the close", async () => {
  const server = wedgedServer();
  let client: StreamClient | undefined;
  try {
    client = await StreamClient.connect(server.url, { idleTimeoutMs: 0 });
    const job = client.infer({ prompt: "hi" });
    const reader = job.tokens.getReader();
    assertEquals((await reader.read()).value?.text, "A");
    client.close();
    assertEquals(await settledAtOnce(job.done), true, "done settles when the client closes");
    const error = await assertRejects(() => job.done, StreamClosedError);
    assertEquals(error.message, "the client closed the socket");
    assertEquals(await assertRejects(() => reader.read(), StreamClosedError), error);
    await server.closeReceived;
    assertEquals(server.messages.length, 1, "the infer; the close frame tells the node the rest");
  } finally {
    server.close();
    await client?.closed;
  }
});

Deno.test("runInfer: Ctrl-C against a node that never answers the close exits 130 at once, not when (if ever) the node answers", async () => {
  const server = wedgedServer();
  const err: string[] = [];
  let stop: (() => void) | undefined;
  const run = runInfer(["--url", server.url, "--idle-timeout", "0", "hi"], {
    stdout: () => stop!(), // Ctrl-C as the first token arrives
    stderr: (text) => void err.push(text),
    onStopSignal: (listener) => {
      stop = listener;
      return () => {};
    },
  });
  try {
    // The client's close frame has crossed the network: by now the command has long finished
    // what Ctrl-C asks of it; only a reply that never comes would hold it.
    await server.closeReceived;
    assertEquals(await settledAtOnce(run), true, "runInfer returns without the node's reply");
    assertEquals(await run, 130);
    assert(err.join("").includes("interrupted"), err.join(""));
    assertEquals(
      server.messages.map((m) => (m as { type: string }).type),
      ["infer", "cancel"],
      "the node is told to cancel the job before the socket closes",
    );
  } finally {
    server.close();
    await run;
  }
});

/**
 * A `/v1/stream` stand-in that answers each `infer` with a start, the tokens "a" and "b", and
 * then `end`: an error message for the job, or closing the socket.
 */
function failingAfterTwoTokens(end: "error" | "close"): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const { id } = JSON.parse(event.data);
      socket.send(JSON.stringify({
        type: "start",
        id,
        job_id: "ab".repeat(32),
        model: "x",
        model_name: "x",
        execution_provider: "cpu",
        prompt_tokens: 1,
      }));
      for (const [index, text] of ["a", "b"].entries()) {
        socket.send(JSON.stringify({ type: "token", id, index, token_id: 97 + index, text }));
      }
      if (end === "error") {
        socket.send(JSON.stringify({
          type: "error",
          id,
          code: "worker_stalled",
          message: "the worker went silent",
        }));
      } else socket.close(1011, "worker lost");
    };
    return response;
  });
}

Deno.test("StreamClient: the tokens that arrived before a job's error or the socket's close are read first, then the stream errors (none is dropped unread)", async () => {
  for (const end of ["error", "close"] as const) {
    const server = failingAfterTwoTokens(end);
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    try {
      const job = client.infer({ prompt: "hi" });
      // A reader slower than the socket: everything has arrived before it reads a token.
      const failure = await job.done.then(() => undefined, (error) => error);
      const expected = end === "error" ? StreamRequestError : StreamClosedError;
      assert(failure instanceof expected, `${end}: done rejects with ${expected.name}`);
      const { texts, error } = await readAll(job.tokens);
      assertEquals(texts, ["a", "b"], `${end}: the tokens received are all read`);
      assertEquals(error, failure, `${end}: then the stream errors as done rejected`);
    } finally {
      client.close();
      await client.closed;
      await server.shutdown();
    }
  }
});

Deno.test("the ./client entry point's documentation lints clean: every type its API names is exported from it", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", new URL("../../client/mod.ts", import.meta.url).pathname],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
});
