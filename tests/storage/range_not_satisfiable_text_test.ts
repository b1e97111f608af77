/**
 * What `range_not_satisfiable` says of a range `FileStore.get` refuses (review s79 F5): a range
 * that overlaps the file's end was called "outside" it; the message now says which end is wrong.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { RangeNotSatisfiableError } from "../../storage/errors.ts";

Deno.test("range_not_satisfiable says a range runs past the end, starts past it, or is inverted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-range-text-" });
  try {
    const files = new FileStore(await ChunkStore.open(dir, { durable: false }));
    const { cid } = await files.put(ReadableStream.from([new TextEncoder().encode("0123456789")]));
    const refused = async (start: number, end: number) => {
      const error = await files.get(cid, { start, end }).then(() => undefined, (e) => e);
      assert.ok(error instanceof RangeNotSatisfiableError, String(error));
      assert.equal(error.code, "range_not_satisfiable");
      assert.doesNotMatch(error.message, /outside/);
      return error.message;
    };
    assert.equal(
      await refused(5, 50),
      "range [5, 50) runs past the end of a 10-byte file (its last byte is 9)",
    );
    assert.equal(
      await refused(10, 20),
      "range [10, 20) starts at or past the end of a 10-byte file",
    );
    assert.equal(await refused(7, 3), "range [7, 3) ends before it starts");
    assert.equal(
      new RangeNotSatisfiableError(0, 1, 0).message,
      "range [0, 1) starts at or past the end of a 0-byte file",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
