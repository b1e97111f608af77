/**
 * Stop 65: a share link's opener tells "no such share" from "the share opens, but its node does
 * not serve this block". Both are HTTP 404s; the node's error object names which
 * (`share_not_found` or `chunk_not_found`, docs/API.md "Errors"). Until now every 404 read as
 * `share_not_found` ("no share <id>"), so a node missing one chunk of a shared file sent its
 * reader looking for a revoked link.
 */
import assert from "node:assert/strict";
import { readShareAnsweringThirdChunk as openWithRefusedChunk } from "./_share_read_fixture.ts";

const errorObject = (code: string, message: string) =>
  new Response(
    JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code } }),
    { status: 404, headers: { "content-type": "application/json" } },
  );

Deno.test("a share whose node does not serve one of its blocks fails with chunk_not_found, not share_not_found", async () => {
  const error = await openWithRefusedChunk(() =>
    errorObject("chunk_not_found", "that block is not part of the share")
  );
  assert.ok(error instanceof Error, `the read fails: ${String(error)}`);
  assert.equal((error as { code?: string }).code, "chunk_not_found", error.message);
  assert.match(error.message, /does not serve it/);
});

Deno.test("a 404 naming share_not_found, or one without an error object, is still share_not_found", async () => {
  for (
    const refusal of [
      () => errorObject("share_not_found", "no share"),
      () => new Response("not found", { status: 404 }),
      () => new Response("x".repeat(10_000), { status: 404 }),
    ]
  ) {
    const error = await openWithRefusedChunk(refusal);
    assert.ok(error instanceof Error, `the read fails: ${String(error)}`);
    assert.equal((error as { code?: string }).code, "share_not_found", error.message);
  }
});
