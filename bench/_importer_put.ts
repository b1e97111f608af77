/**
 * The storage bench's IPFS row, run in a process of its own (`storage_bench.ts` spawns it once
 * per run): the npm `ipfs-unixfs-importer` imports a file into {@link FsBlockstore} (one file per
 * block, each fsynced with its directory). Its own process, so the importer's heap and the
 * allocator's high-water mark never count in the RSS of Veriflow's puts measured beside it, nor
 * theirs in its.
 *
 * ```sh
 * deno run -A bench/_importer_put.ts SOURCE BLOCKSTORE_DIR   # prints { seconds, root, peakRss }
 * ```
 *
 * Settings: those of `ipfs add --cid-version 1 --raw-leaves --chunker=size-262144` (the
 * importer's defaults: balanced layout, 174 links per node, 50 blocks written concurrently).
 *
 * @module
 */
import { importer } from "ipfs-unixfs-importer";
import { FsBlockstore } from "./_fs_blockstore.ts";

/** How often the peak RSS is sampled (the bench samples the puts at the same rate). */
const RSS_SAMPLE_MS = 10;

/** What one import measured. */
export interface ImporterRun {
  /** Wall time of the import, from opening the source to the root. */
  seconds: number;
  /** The root CID. */
  root: string;
  /** Peak RSS of this process during the import, in bytes. */
  peakRss: number;
}

/** Import `source` into a durable blockstore at `dir`. */
export async function importFile(source: string, dir: string): Promise<ImporterRun> {
  let peakRss = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
  }, RSS_SAMPLE_MS);
  const start = performance.now();
  let root = "";
  try {
    const file = await Deno.open(source);
    const blocks = new FsBlockstore(dir);
    const options = { cidVersion: 1, rawLeaves: true } as const;
    for await (const entry of importer([{ content: file.readable }], blocks as never, options)) {
      root = entry.cid.toString(); // one file: its entry is the root
    }
  } finally {
    clearInterval(timer);
  }
  const seconds = (performance.now() - start) / 1000;
  return { seconds, root, peakRss: Math.max(peakRss, Deno.memoryUsage().rss) };
}

if (import.meta.main) {
  const [source, dir] = Deno.args;
  console.log(JSON.stringify(await importFile(source, dir)));
}
