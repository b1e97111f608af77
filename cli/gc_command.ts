/**
 * `cli.ts gc`: remove the objects of the store of a node's data directory (`_command_store.ts`)
 * that no pinned file references, once older than the grace period. Returns a process exit code:
 * 0 success, 1 a storage failure (printed as `error [code]: message`), 2 a usage error.
 *
 * @module
 */
import { join } from "node:path";
import { commandDataDir } from "../node/default_data_dir.ts";
import { StorageError } from "../storage/errors.ts";
import { formatBytes } from "../storage/progress_bar.ts";
import {
  countOf,
  parseCommand,
  reportErrors,
  usage,
  wholeNumberFlag,
  wrongOperands,
} from "./_command_support.ts";
import { openExistingStore } from "./_command_store.ts";
import { GC_USAGE } from "./storage_help.ts";

/** `gc`: remove unreferenced objects older than the grace period. */
export async function runGc(args: string[]): Promise<number> {
  const parsed = parseCommand(args, {
    data: { type: "string" },
    "grace-ms": { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, GC_USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) return usage(GC_USAGE, 0);
  const wrong = wrongOperands(positionals, [], GC_USAGE);
  if (wrong !== undefined) return wrong;
  const dataDir = await commandDataDir(values.data);
  return await reportErrors(async () => {
    const graceMs = wholeNumberFlag("--grace-ms", values["grace-ms"]);
    const store = await openExistingStore(dataDir, { gcGraceMs: graceMs });
    const result = await store.gc();
    if (values.json) console.log(JSON.stringify(result, null, 2));
    if (result.unreadableRoots.length > 0) {
      throw new StorageError(
        "unreadable_root",
        `nothing removed: pinned ${result.unreadableRoots.join(", ")} cannot be read here ` +
          `(its root or an inner node is missing or corrupt; \`cli.ts ls\` flags it), so GC ` +
          `cannot know what it references. Put the file again to ` +
          `restore it, or unpin it (delete ${join(dataDir, "store", "pins", "<cid>")}).`,
      );
    }
    if (values.json) return;
    const abandoned = result.abandonedPuts > 0
      ? `; ${countOf(result.abandonedPuts, "interrupted put")} released`
      : "";
    console.log(
      `removed ${countOf(result.removed, "object")} (${formatBytes(result.freedBytes)}); kept ` +
        `${result.kept} referenced and ${result.young} younger than the grace period${abandoned}`,
    );
    if (result.skippedPacks.length > 0) {
      const garbage = result.skippedPacks.reduce((sum, p) => sum + p.garbageBytes, 0);
      console.error(
        `disk_full: ${countOf(result.skippedPacks.length, "pack")} left whole with ` +
          `${formatBytes(garbage)} of garbage (removing it means first writing what the pack ` +
          `keeps, and the disk has no room for that); free some space and run gc again`,
      );
    }
  }, "gc");
}
