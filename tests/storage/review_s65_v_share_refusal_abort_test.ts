/**
 * Review (stop 65, helper V): a share link's reader reads a 404's error object to tell
 * `share_not_found` from `chunk_not_found`. When that body does not come (the reader's caller
 * gave up, or the node stalls past the link's timeout), the refusal is not known: the reader
 * reports its caller's abort, or `node_timeout`, not "no share" (a revoked link).
 */
import assert from "node:assert/strict";
import { readShareAnsweringThirdChunk } from "./_share_read_fixture.ts";

/** A 404 whose body never comes. */
const stalled404 = () =>
  new Response(new ReadableStream({ pull: () => new Promise(() => {}) }), { status: 404 });

/** Reads a share whose node answers its third chunk with a 404 whose body stalls. */
function readStalled(
  options: { timeoutMs?: number; signal?: AbortSignal },
  onRefusal: () => void,
): Promise<unknown> {
  return readShareAnsweringThirdChunk(() => {
    onRefusal();
    return stalled404();
  }, options);
}

Deno.test("a share read whose caller aborts while a 404's error body is awaited fails with the caller's abort, not share_not_found", async () => {
  const abort = new AbortController();
  const reason = new Error("the caller gave up");
  const error = await readStalled({ signal: abort.signal }, () => abort.abort(reason));
  assert.equal(error, reason, `the caller's abort: ${String(error)}`);
});

Deno.test("a share read whose node stalls a 404's error body past the link's timeout fails with node_timeout, not share_not_found", async () => {
  const error = await readStalled({ timeoutMs: 200 }, () => {});
  assert.ok(error instanceof Error, String(error));
  assert.equal((error as { code?: string }).code, "node_timeout", error.message);
});
