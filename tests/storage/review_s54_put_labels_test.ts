/**
 * Review s54 of `cli.ts put --name` / `--mime`: a label the put cannot record as given is a usage
 * error before anything is stored, as `POST /v1/files` refuses it, never a put that exits 0 and
 * drops it (one over `MAX_FILE_LABEL_CHARS`, or any label on a directory, which has none).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPut } from "../../storage/storage_commands.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { MAX_FILE_LABEL_CHARS } from "../../protocols/media_type.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";

/** A directory with `f.txt` and `tree/a.txt`, and a data directory not yet made. */
async function fixture(): Promise<{ dir: string; data: string }> {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(join(dir, "f.txt"), "hello");
  await Deno.mkdir(join(dir, "tree"));
  await Deno.writeTextFile(join(dir, "tree", "a.txt"), "a");
  return { dir, data: join(dir, "d") };
}

const LONG = MAX_FILE_LABEL_CHARS + 1;

const OVERLONG: Record<string, string[]> = {
  "--name": ["--name", "n".repeat(LONG)],
  // A label several KiB long was stored with exit 0, and its pin label, too large to be one the
  // store wrote, then read as none: the type given with it was lost as well.
  "--name of several KiB": ["--name", "n".repeat(8 * 1024), "--mime", "text/plain"],
  "--mime": ["--mime", `text/plain; x=${"v".repeat(LONG)}`],
};

for (const [what, flags] of Object.entries(OVERLONG)) {
  for (const tier of ["public", "private"]) {
    Deno.test(`cli put ${what} over ${MAX_FILE_LABEL_CHARS} chars (${tier} tier) is a one-line usage error naming the flag and the limit, exit 2, and stores nothing`, async () => {
      const { dir, data } = await fixture();
      const args = tier === "private" ? ["--private"] : [];
      const put = await capture(() =>
        runPut([...args, ...flags, "--data", data, join(dir, "f.txt")])
      );
      assert.equal(put.code, 2, `${put.out}\n${put.err}`);
      assert.equal(put.out, "");
      assert.equal(put.err.split("\n").length, 1, put.err);
      assert.match(put.err, new RegExp(`${flags[0]} .*${MAX_FILE_LABEL_CHARS}`));
      assert.equal(await exists(data), false, "no store is created, nothing is stored");
      await Deno.remove(dir, { recursive: true });
    });
  }
}

Deno.test(`cli put --name and --mime of ${MAX_FILE_LABEL_CHARS} chars are recorded as given`, async () => {
  const { dir, data } = await fixture();
  const name = "n".repeat(MAX_FILE_LABEL_CHARS);
  const mime = `text/plain; x=${"v".repeat(MAX_FILE_LABEL_CHARS - "text/plain; x=".length)}`;
  const put = await capture(() =>
    runPut(["--name", name, "--mime", mime, "--data", data, join(dir, "f.txt")])
  );
  assert.equal(put.code, 0, put.err);
  const store = await ChunkStore.open(join(data, "store"));
  assert.deepEqual(await store.pinLabel(put.out.trim()), { name, mime });
  await Deno.remove(dir, { recursive: true });
});

for (const flags of [["--name", "site"], ["--mime", "text/html"]]) {
  Deno.test(`cli put ${flags[0]} with a directory is a one-line usage error naming it, exit 2, and stores nothing`, async () => {
    const { dir, data } = await fixture();
    const put = await capture(() => runPut([...flags, "--data", data, join(dir, "tree")]));
    // It used to put the directory (exit 0) and drop the label without a word.
    assert.equal(put.code, 2, `${put.out}\n${put.err}`);
    assert.equal(put.out, "");
    assert.equal(put.err.split("\n").length, 1, put.err);
    assert.match(put.err, new RegExp(`${flags[0]}.*directory`));
    assert.equal(await exists(data), false, "no store is created, nothing is stored");
    await Deno.remove(dir, { recursive: true });
  });
}
