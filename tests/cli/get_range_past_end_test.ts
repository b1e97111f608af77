/**
 * `get --range` that runs past the end of the file reads to its end, as an HTTP byte range is
 * clipped to the body (`server/http_range.ts`, RFC 9110 §14.1.1): review s79 F5, where a range
 * overlapping the file's last bytes was refused as "outside" it. Only a range that starts at or
 * past the end reads nothing, and says so.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli } from "./_cli_child.ts";

Deno.test("get --range past the end reads to the end; one starting past it says where the file ends", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-get-range-" });
  try {
    const data = join(dir, "d");
    await Deno.writeTextFile(join(dir, "in.txt"), "0123456789");
    const put = await cli(["put", "--init", "--data", data, join(dir, "in.txt")]);
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim();

    const tail = await cli(["get", cid, "--data", data, "--range", "5-50"]);
    assert.equal(tail.code, 0, tail.err);
    assert.equal(tail.out, "56789");

    const past = await cli(["get", cid, "--data", data, "--range", "10-20"]);
    assert.equal(past.code, 1, past.err);
    assert.match(
      past.err,
      /error \[range_not_satisfiable\]: range \[10, 20\) starts at or past the end of a 10-byte file/,
    );
    assert.doesNotMatch(past.err, /outside/);
    assert.equal(past.out, "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
