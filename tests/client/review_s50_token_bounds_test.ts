/**
 * Review s50 of the streaming client (`client/stream_client.ts`) against a hostile or faulty
 * server: a job's tokens must be the ones it asked for, in order, and no more than its
 * `max_tokens`. Before, the client queued whatever `token` frames came (a server could fill a
 * caller's memory past the bound the docs tell it to rely on, or hand it tokens out of order).
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { StreamClient, StreamClosedError } from "../../client/stream_client.ts";
import { scriptedServer } from "./_stub_servers.ts";

/** A server that answers each job with `start`, then the token indices given, then `done`. */
function indexedServer(indices: number[]): Deno.HttpServer<Deno.NetAddr> {
  return scriptedServer(indices.map((index) => ({ index, text: "A" })));
}

async function readAll(stream: ReadableStream<{ index: number }>): Promise<number[]> {
  const seen: number[] = [];
  for await (const token of stream) seen.push(token.index);
  return seen;
}

Deno.test("review s50: a server that sends more tokens than the job's max_tokens fails the job as a protocol error, after the tokens it was owed", async () => {
  const server = indexedServer([0, 1, 2, 3, 4]);
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const job = client.infer({ prompt: "x", max_tokens: 2 });
    const seen: number[] = [];
    const error = await assertRejects(async () => {
      for await (const token of job.tokens) seen.push(token.index);
    }, StreamClosedError);
    assert(error.message.includes("more tokens than the job's max_tokens (2)"), error.message);
    assertEquals(seen, [0, 1]);
    await assertRejects(() => job.done, StreamClosedError);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("review s50: a token out of order (an index skipped or repeated) fails the job as a protocol error", async () => {
  for (const indices of [[0, 2], [0, 0]]) {
    const server = indexedServer(indices);
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    try {
      const job = client.infer({ prompt: "x", max_tokens: 8 });
      const error = await assertRejects(() => readAll(job.tokens), StreamClosedError);
      assert(error.message.includes("out of order"), error.message);
    } finally {
      client.close();
      await server.shutdown();
    }
  }
});

Deno.test("review s50: tokens in order and within max_tokens still arrive whole", async () => {
  const server = indexedServer([0, 1, 2]);
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const job = client.infer({ prompt: "x", max_tokens: 3 });
    assertEquals(await readAll(job.tokens), [0, 1, 2]);
    assertEquals((await job.done).usage.completion_tokens, 3);
  } finally {
    client.close();
    await server.shutdown();
  }
});
