/**
 * The small records a TrainerService (`trainer_service.ts`) keeps in its data directory as JSON
 * lists of string pairs — the round slots it signed (`_signed_slots.ts`) and the coordinator each
 * recent receipt was trained for (`_receipt_coordinators.ts`) — and that directory, made once
 * for both. Written durably (`_durable_file.ts`). Not part of the public API.
 *
 * @module
 */
import { dirname } from "node:path";
import { syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";
import { makeOwnerDir } from "../protocols/owner_only.ts";

/** The trainer's data directory, made (with its entry on disk) the first time it is asked for. */
export class TrainerDataDir {
  readonly #dir: string | undefined;
  /** Whether the directory is known to exist, its entry on disk. */
  #made = false;

  /** @param dir The data directory (`make` is called only when there is one). */
  constructor(dir: string | undefined) {
    this.#dir = dir;
  }

  /** The data directory, made (with its entry on disk) if it was not. */
  async make(): Promise<string> {
    const dir = this.#dir!;
    if (!this.#made) {
      await makeOwnerDir(dir);
      await syncDirectory(dirname(dir)); // the directory's own entry, if this made it
      this.#made = true;
    }
    return dir;
  }
}

/**
 * The JSON list of string pairs at `path` (the signed slots, the coordinators of receipts):
 * undefined when there is no file, "damaged" when it is not such a list.
 */
export async function readPairs(
  path: string,
): Promise<[string, string][] | "damaged" | undefined> {
  const text = await Deno.readTextFile(path).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (text === undefined) return undefined;
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch {
    return "damaged";
  }
  const valid = Array.isArray(entries) &&
    entries.every((e) =>
      Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && typeof e[1] === "string"
    );
  return valid ? entries as [string, string][] : "damaged";
}

/** Write `pairs` as {@link readPairs} reads them, durably (`_durable_file.ts`). */
export async function writePairs(path: string, pairs: Iterable<[string, string]>): Promise<void> {
  await writeFileDurably(path, new TextEncoder().encode(JSON.stringify([...pairs])));
}
