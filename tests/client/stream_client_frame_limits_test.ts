/**
 * What a hostile or faulty server's frames can cost the client (red-team review s71, finding 4):
 * a token frame has a size limit, so unread tokens cannot hold GiBs; and a connection dropped
 * without a close frame (as Deno drops one carrying a message over 64 MiB) says so.
 */
import { MAX_FRAME_CHARS, StreamClient, StreamClosedError } from "../../client/stream_client.ts";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { scriptedServer, wedgedServer } from "./_stub_servers.ts";

Deno.test("a token frame over MAX_FRAME_CHARS fails the job as a protocol error naming the limit, after the tokens before it", async () => {
  const fat = "x".repeat(MAX_FRAME_CHARS); // the frame around it is longer still
  const server = scriptedServer([{ index: 0, text: "A" }, { index: 1, text: fat }]);
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const job = client.infer({ prompt: "x", max_tokens: 16 });
    const seen: string[] = [];
    const error = await assertRejects(async () => {
      for await (const token of job.tokens) seen.push(token.text);
    }, StreamClosedError);
    assertEquals(seen, ["A"]);
    assert(error.message.includes("not a Veriflow /v1/stream"), error.message);
    assert(error.message.includes(`limit of ${MAX_FRAME_CHARS} characters`), error.message);
    await assertRejects(() => job.done, StreamClosedError);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("a real token with 20 top_logprobs of long texts fits under MAX_FRAME_CHARS", async () => {
  // A long token (a run of 256 control bytes, each escaped to six characters in JSON) as the
  // token and as each of the 20 alternatives the protocol allows.
  const text = "\u0001".repeat(256);
  const frame = JSON.stringify({
    type: "token",
    id: "r1",
    index: 0,
    token_id: 65535,
    text,
    logprob: -1.2345678901234567,
    top_logprobs: Array.from({ length: 20 }, () => ({
      token_id: 65535,
      text,
      logprob: -1.2345678901234567,
    })),
  });
  assert(frame.length < MAX_FRAME_CHARS, `${frame.length} characters`);
  const server = scriptedServer([{ index: 0, text }]);
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const job = client.infer({ prompt: "x", max_tokens: 1 });
    for await (const token of job.tokens) assertEquals(token.text, text);
    assertEquals((await job.done).usage.completion_tokens, 1);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("a connection dropped without a close frame says so (close code 1006 or 0; a frame over Deno's 64 MiB limit is one cause)", async () => {
  const server = wedgedServer();
  let serverOpen = true;
  const client = await StreamClient.connect(server.url, { idleTimeoutMs: 0 });
  try {
    const job = client.infer({ prompt: "x" });
    const reader = job.tokens.getReader();
    assertEquals((await reader.read()).value?.text, "A"); // running
    server.close(); // the TCP connection ends with no close frame
    serverOpen = false;
    const error = await assertRejects(() => job.done, StreamClosedError);
    const code = error.details.closeCode;
    assert(code === 1006 || code === 0, `close code ${code}`);
    assertEquals(
      error.message,
      `the socket closed before the job ended: the connection dropped (close code ${code}; a ` +
        `frame over Deno's 64 MiB limit is one cause)`,
    );
  } finally {
    if (serverOpen) server.close();
    await client.closed;
  }
});
