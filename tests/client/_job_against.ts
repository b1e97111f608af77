/**
 * One job against a scripted stand-in, and the check that it failed as a protocol error: shared by
 * the tests of what a faulty or hostile `/v1/stream` server cannot make the client believe.
 *
 * @module
 */
import { StreamClient, StreamClosedError } from "../../client/stream_client.ts";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { framesServer } from "./_stub_servers.ts";

/** The code the review asked for: stable, published in docs/API.md. */
export const PROTOCOL_ERROR_CODE = "stream_protocol_error";

/** What a job on a fresh client got from a server that answers with `frames`: tokens, end. */
export async function jobAgainst(
  frames: (id: string) => readonly (Record<string, unknown> | string)[],
  request: Parameters<StreamClient["infer"]>[0] = { prompt: "x", max_tokens: 8 },
): Promise<{ seen: string[]; error?: unknown; done?: unknown }> {
  await using server = framesServer(frames);
  using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  const job = client.infer(request);
  const seen: string[] = [];
  try {
    for await (const token of job.tokens) seen.push(token.text);
    return { seen, done: await job.done };
  } catch (error) {
    await assertRejects(() => job.done);
    return { seen, error };
  }
}

/** `error` is the client's protocol error about a `frameType` frame, saying `what`. */
export function assertProtocolError(
  error: unknown,
  frameType: string | undefined,
  what: string,
): void {
  assert(error instanceof StreamClosedError, String(error));
  assertEquals(error.code, PROTOCOL_ERROR_CODE);
  assertEquals(error.details.frameType, frameType);
  const problem = error.details.protocolError ?? "";
  assert(problem.includes(what), problem);
  assert(error.message.includes(problem), error.message);
  // The frame's own text never reaches a message: it may hold anything.
  assert(!error.message.includes("\x1b"), JSON.stringify(error.message));
}
