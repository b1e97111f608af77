/** Review s53 of `cli.ts put --mime`: the type a file is recorded with must be one a header carries. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPut } from "../../storage/storage_commands.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { captureConsole as capture, exists } from "../_helpers/console_capture.ts";

/** Labels no `Content-Type` header can carry, which `POST /v1/files` refuses. */
const BAD_LABELS: Record<string, string> = {
  "holds CR LF": "text/plain\r\nx-evil: 1",
  "holds NUL": "text/plain\0",
  "holds characters past Latin-1": "text/plain; name=日本",
  "is empty": "",
  "has no subtype": "text",
};

for (const [what, mime] of Object.entries(BAD_LABELS)) {
  for (const tier of ["public", "private"]) {
    Deno.test(`cli put --mime whose label ${what} (${tier} tier) is a one-line usage error naming --mime, exit 2, and stores nothing`, async () => {
      const dir = await Deno.makeTempDir();
      const data = join(dir, "d");
      await Deno.writeTextFile(join(dir, "f.txt"), "hello");
      const args = tier === "private" ? ["--private"] : [];
      const put = await capture(() =>
        runPut([...args, "--mime", mime, "--data", data, join(dir, "f.txt")])
      );
      // It used to store the file (exit 0) with that label as its type: every read of it then
      // had no header to carry it in.
      assert.equal(put.code, 2, put.out);
      assert.equal(put.out, "");
      assert.equal(put.err.split("\n").length, 1, put.err);
      assert.match(put.err, /--mime/);
      assert.equal(await exists(data), false, "no store is created, nothing is stored");
      await Deno.remove(dir, { recursive: true });
    });
  }
}

Deno.test("cli put --mime with a media type and parameters records it as the file's type", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "d");
  await Deno.writeTextFile(join(dir, "f.txt"), "hello");
  const mime = "text/plain; charset=utf-8";
  const put = await capture(() => runPut(["--mime", mime, "--data", data, join(dir, "f.txt")]));
  assert.equal(put.code, 0, put.err);
  const store = await ChunkStore.open(join(data, "store"));
  assert.equal((await store.pinLabel(put.out.trim()))?.mime, mime);
  await Deno.remove(dir, { recursive: true });
});
