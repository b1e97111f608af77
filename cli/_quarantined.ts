/**
 * What the storage commands say of a file whose block the store set aside as corrupt (review s75
 * F4): after a read found a block's bytes did not match its CID, the store moved them to
 * `quarantine/` (`storage/_quarantine.ts`, as `<key>.<ms>`), and every later read of the block
 * fails `chunk_not_found`, which `get` answered with "check the CID" and `ls` with a bare code.
 * The file is damaged, and only putting it again (or a peer's copy) brings it back.
 *
 * @module
 */
import { join } from "node:path";
import { storageKey } from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";

/** The store's quarantine directory (`storage/_quarantine.ts`). */
const QUARANTINE_DIR = "quarantine";

/** True when the store in `storeDir` set a copy of block `cid` aside in `quarantine/`. */
export async function wasQuarantined(storeDir: string, cid: string): Promise<boolean> {
  let key: string;
  try {
    key = storageKey(cid);
  } catch {
    return false; // not a CID: nothing of it can be there
  }
  return (await quarantinedKeys(storeDir)).has(key);
}

/**
 * The storage keys of every block the store in `storeDir` set a copy of aside in `quarantine/`
 * (one read of the directory, for a walk that asks of many blocks); empty when there is none.
 */
export async function quarantinedKeys(storeDir: string): Promise<Set<string>> {
  const keys = new Set<string>();
  try {
    for await (const entry of Deno.readDir(join(storeDir, QUARANTINE_DIR))) {
      // `<key>.<ms>` for a block; a damaged pack's name has no key before its dot.
      const dot = entry.name.indexOf(".");
      if (dot > 0) keys.add(entry.name.slice(0, dot));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return keys;
}

/**
 * `error`'s message, when it is a `chunk_not_found` of a block the store in `storeDir`
 * quarantined, rewritten to say so and what to do; true when it was. The code stays: there is no
 * good copy here.
 */
export async function explainQuarantined(error: unknown, storeDir: string): Promise<boolean> {
  if (!(error instanceof VeriflowError) || error.code !== "chunk_not_found") return false;
  const cid = (error as { cid?: unknown }).cid;
  if (typeof cid !== "string" || !await wasQuarantined(storeDir, cid)) return false;
  error.message = `block ${cid} of this file was set aside in quarantine/ as corrupt (its bytes ` +
    "did not match its CID): the file is damaged here; put the file again";
  return true;
}
