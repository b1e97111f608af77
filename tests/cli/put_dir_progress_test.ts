/**
 * `put --progress DIR` draws a bar over the bytes of every file under DIR, and a put that fails
 * draws the bytes it stored before its error line (review s79 F3: a directory drew nothing, and a
 * failed put left the bar at its last throttled draw, 256 KiB, while the error said 5.8 MiB).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli } from "./_cli_child.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";

/** The bar lines of a run's stderr: each redraw starts with a carriage return. */
function barLines(err: string): string[] {
  return err.split(/[\r\n]/).filter((line) => line.startsWith("put ["));
}

/** Bytes of a size as `formatBytes` writes it (`330.0 KiB`), to within its rounding. */
function bytesOf(text: string): number {
  const [value, unit] = text.split(" ");
  return Number(value) * 1024 ** ["B", "KiB", "MiB", "GiB"].indexOf(unit);
}

/**
 * How far the bar's count of file bytes may be from the error's count of stored objects: the
 * objects include the file nodes that link the leaves (a few hundred bytes each), and both are
 * rounded to a tenth of a unit.
 */
const NODE_AND_ROUNDING_BYTES = 1024;

/** A directory of two files in a subdirectory and one beside it: 3 × 300,000 bytes. */
async function tree(dir: string): Promise<string> {
  const root = join(dir, "tree");
  await Deno.mkdir(join(root, "sub"), { recursive: true });
  await Deno.writeFile(join(root, "a.bin"), pseudoRandomBytes(300_000, 1));
  await Deno.writeFile(join(root, "sub", "b.bin"), pseudoRandomBytes(300_000, 2));
  await Deno.writeFile(join(root, "sub", "c.bin"), pseudoRandomBytes(300_000, 3));
  return root;
}

Deno.test("put --progress DIR draws a bar that ends at 100% of the bytes of every file in the tree", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-put-dir-progress-" });
  try {
    const put = await cli([
      "put",
      "--init",
      "--progress",
      "--data",
      join(dir, "d"),
      await tree(dir),
    ]);
    assert.equal(put.code, 0, put.err);
    const bars = barLines(put.err);
    assert.ok(bars.length > 0, `no bar drawn: ${JSON.stringify(put.err)}`);
    // 900,000 bytes over the three files, not one file's 300,000.
    assert.match(bars.at(-1)!, /100% 878\.9 KiB \/ 878\.9 KiB/);
    assert.match(put.out.trim(), /^bafybei/); // the directory's CID, still alone on stdout
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("put --progress DIR that fails midway draws the bytes it stored, then its error line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-put-dir-progress-" });
  try {
    // Room for the first file and part of the second: the put fails on its quota.
    const put = await cli([
      "put",
      "--init",
      "--progress",
      "--quota",
      "500000",
      "--data",
      join(dir, "d"),
      await tree(dir),
    ]);
    assert.equal(put.code, 1, put.err);
    const error = /(?:^|\n)error \[quota_exceeded\][^\n]*\(([\d.]+ \w+)\) this put stored/
      .exec(put.err);
    assert.ok(error, put.err);
    const bars = barLines(put.err);
    assert.ok(bars.length > 0, `no bar drawn: ${JSON.stringify(put.err)}`);
    // The last draw says what the error says was stored, not an earlier count.
    const drawn = /% ([\d.]+ \w+) \/ 878\.9 KiB/.exec(bars.at(-1)!);
    assert.ok(drawn, bars.at(-1)!);
    assert.ok(
      Math.abs(bytesOf(drawn[1]) - bytesOf(error[1])) <= NODE_AND_ROUNDING_BYTES,
      `bar ${drawn[1]}, error ${error[1]}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
