/**
 * What the chunk store's in-memory index costs: the time to open a store (read every pack
 * header, build the index) and the heap it holds per object, for a store of many objects in
 * few packs and one of many one-object packs. Each open runs in a fresh process, so the heap
 * figure is the index's and nothing else's.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc bench/store_index_bench.ts [--objects N] [--runs N]
 * ```
 *
 * A characterization, not a goal: there is no baseline to beat, so no ratio is printed. The
 * stores use 16-byte objects (the index cost does not depend on object size) written without
 * fsync, to build them quickly.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ChunkStore } from "../storage/chunk_store.ts";
import { median } from "./_stats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    objects: { type: "string" },
    runs: { type: "string" },
    "child-open": { type: "string" },
  },
});
/** Objects put at once while building the large store: group commit makes them one pack. */
const BATCH = 2000;
const SMALL_PACKS = 3000;

function objectBytes(i: number): Uint8Array {
  const bytes = new Uint8Array(16);
  new DataView(bytes.buffer).setUint32(0, i);
  return bytes;
}

/** Child mode: open the store in `dir` and print `{ ms, heapPerObject, objects }` as JSON. */
async function openAndMeasure(dir: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  gc();
  const before = Deno.memoryUsage().heapUsed;
  const start = performance.now();
  const store = await ChunkStore.open(dir);
  const ms = performance.now() - start;
  gc();
  const objects = (await store.stats()).objectCount;
  const heapPerObject = (Deno.memoryUsage().heapUsed - before) / objects;
  console.log(JSON.stringify({ ms, heapPerObject, objects }));
}

async function openInChild(dir: string): Promise<{ ms: number; heapPerObject: number }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", import.meta.filename!, "--child-open", dir],
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error("the open child failed");
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

async function main(): Promise<void> {
  const objects = Number(values.objects ?? 100_000);
  const runs = Number(values.runs ?? 3);
  const root = await Deno.makeTempDir({ prefix: "veriflow-index-bench-" });
  try {
    const large = `${root}/large`;
    const store = await ChunkStore.open(large, { durable: false });
    for (let i = 0; i < objects; i += BATCH) {
      const n = Math.min(BATCH, objects - i);
      await Promise.all(Array.from({ length: n }, (_, j) => store.put(objectBytes(i + j))));
    }
    const small = `${root}/small`;
    const smallStore = await ChunkStore.open(small, { durable: false });
    for (let i = 0; i < SMALL_PACKS; i++) await smallStore.put(objectBytes(i)); // one pack each
    const count = async (dir: string) => {
      let n = 0;
      for await (const _ of Deno.readDir(`${dir}/packs`)) n++;
      return n;
    };
    console.log(
      `chunk store index: open time and heap per object, median of ${runs} fresh processes`,
    );
    console.log("store                              objects  packs   open ms  heap B/object");
    for (
      const [label, dir, n] of [["many objects, few packs", large, objects], [
        "one object per pack",
        small,
        SMALL_PACKS,
      ]] as const
    ) {
      const results = [];
      for (let r = 0; r < runs; r++) results.push(await openInChild(dir));
      console.log(
        `${label.padEnd(34)} ${String(n).padStart(7)} ${String(await count(dir)).padStart(6)} ${
          median(results.map((r) => r.ms)).toFixed(0).padStart(9)
        } ${median(results.map((r) => r.heapPerObject)).toFixed(0).padStart(14)}`,
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (values["child-open"]) await openAndMeasure(values["child-open"]);
else await main();
