/**
 * Subprocess of chunk_store_durability_test.ts: puts a large generated file into a store and reports each stored
 * chunk on stdout, so the test can SIGKILL it mid-way.
 * Usage: deno run -A _crash_put_worker.ts STORE_DIR SIZE_MIB
 */
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { generatedFile } from "./_generated_file.ts";

const [dir, sizeMib] = Deno.args;
const store = await ChunkStore.open(dir);
const files = new FileStore(store);
const encoder = new TextEncoder();
const result = await files.put(generatedFile(Number(sizeMib) * 1024 * 1024), {
  onProgress: (n) => Deno.stdout.writeSync(encoder.encode(`stored ${n}\n`)),
});
await store.pin(result.cid);
console.log(`done ${result.cid}`);
