/**
 * `server/http_range.ts` against RFC 9110 §14 (review s71, F6): a range whose last byte comes
 * before its first is invalid, not unsatisfiable, so the `Range` is ignored (200, whole body),
 * never a 416 that tells the client the range lies past the end; the range unit is matched
 * case-insensitively (§14.1).
 */
import assert from "node:assert/strict";
import { parseRange, rangedResponse } from "../../server/http_range.ts";

const BODY = new TextEncoder().encode("abcdefghijklmnopqrstuvwxyz\n"); // 27 bytes

/** The answer to a GET of {@link BODY} under `range`: status, Content-Range and body. */
async function answer(range: string) {
  const response = await rangedResponse(
    range,
    BODY.length,
    { "content-type": "text/plain" },
    (start, end) => Promise.resolve(ReadableStream.from([BODY.subarray(start, end)])),
  );
  const body = new TextDecoder().decode(await response.arrayBuffer());
  return { status: response.status, contentRange: response.headers.get("content-range"), body };
}

Deno.test("a reversed range (bytes=5-3) is invalid and ignored: 200 with the whole body, not 416", async () => {
  assert.equal(parseRange("bytes=5-3", BODY.length), undefined);
  // Reversed, and starting past the end too: still invalid, not unsatisfiable.
  assert.equal(parseRange("bytes=40-30", BODY.length), undefined);
  assert.deepEqual(await answer("bytes=5-3"), {
    status: 200,
    contentRange: null,
    body: new TextDecoder().decode(BODY),
  });
  // A valid range past the end is still unsatisfiable.
  assert.equal((await answer("bytes=30-40")).status, 416);
});

Deno.test("the range unit is matched case-insensitively: Bytes=0-1 and BYTES=-2 are 206", async () => {
  assert.deepEqual(parseRange("Bytes=0-1", BODY.length), { start: 0, end: 2 });
  assert.deepEqual(await answer("Bytes=0-1"), {
    status: 206,
    contentRange: `bytes 0-1/${BODY.length}`,
    body: "ab",
  });
  assert.deepEqual(await answer("BYTES=-2"), {
    status: 206,
    contentRange: `bytes 25-26/${BODY.length}`,
    body: "z\n",
  });
});
