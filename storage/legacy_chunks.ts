/**
 * Moves a store written by the first layout (one file per object under `chunks/<shard>/<cid>`)
 * into packs, once, when such a store is opened. Each object is verified against its name on
 * the way: good ones are put into the store (durably) before their file is removed, so a crash
 * mid-migration loses nothing and the next open simply continues; bad ones go to quarantine.
 *
 * @module
 */
import { join } from "node:path";
import { cidOfAsync } from "./_hash.ts";
import { isTempName } from "./pack_writer.ts";

/** Objects put concurrently, so the pack writer's group commit gathers them into few packs. */
const BATCH = 32;

/** What {@link migrateLegacyChunks} needs of the store. */
interface PutTarget {
  put(bytes: Uint8Array): Promise<string>;
}

/**
 * Move every object under `dir/chunks` into `store`; returns how many moved. No-op (0) when
 * there is no `chunks/` directory.
 */
export async function migrateLegacyChunks(
  dir: string,
  store: PutTarget,
  quarantineDir: string,
): Promise<number> {
  const root = join(dir, "chunks");
  const files: { name: string; path: string }[] = [];
  try {
    for await (const shard of Deno.readDir(root)) {
      if (!shard.isDirectory) continue;
      for await (const entry of Deno.readDir(join(root, shard.name))) {
        if (entry.isFile) {
          files.push({ name: entry.name, path: join(root, shard.name, entry.name) });
        }
      }
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
  let moved = 0;
  for (let i = 0; i < files.length; i += BATCH) {
    await Promise.all(
      files.slice(i, i + BATCH).map(async ({ name, path }) => {
        if (isTempName(name)) return await Deno.remove(path);
        const bytes = await Deno.readFile(path);
        if (await cidOfAsync(bytes) !== name) {
          return await Deno.rename(path, join(quarantineDir, `${name}.${Date.now()}`));
        }
        await store.put(bytes);
        await Deno.remove(path);
        moved++;
      }),
    );
  }
  await Deno.remove(root, { recursive: true });
  return moved;
}
