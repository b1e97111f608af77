/**
 * Review, stop 45: the worker's proof store against a power cut.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ProofStore } from "../../proof/proof_store.ts";
import type { ProofData } from "../../proof/commitment.ts";

const proof: ProofData = {
  scheme: "vf-fp2",
  chunkSize: 32,
  tokenBytes: 2,
  tokens: new Uint8Array([0, 65]),
  fingerprints: new Uint8Array([1, 2, 3, 4]),
};

Deno.test("proof store: the first record in a new store directory syncs the directory's parent too, so a power cut cannot lose the whole directory", async () => {
  const dataDir = await Deno.makeTempDir();
  const dir = join(dataDir, "proofs"); // as the node's `<dataDir>/proofs`, made by the first put
  const open = Deno.open;
  const opened: string[] = [];
  // Every directory sync opens the directory: seen here, without a power cut.
  Deno.open = ((path: string | URL, options?: Deno.OpenOptions) => {
    if (options?.read && !options.write) opened.push(String(path));
    return open(path, options);
  }) as typeof Deno.open;
  try {
    const store = new ProofStore(dir, { retentionMs: 60_000, now: () => 1_700_000_000_000 });
    await store.put({ receiptId: "a".repeat(64), provedAt: 1_700_000_000_000, proof });
  } finally {
    Deno.open = open;
  }
  try {
    // `proofs` is a new entry of the data directory: until that directory is synced, a power
    // cut may drop it, and with it every record "durably" written in it — the receipts have
    // left the worker, and each challenge of them finds nothing: slashed for withholding.
    assert.ok(opened.includes(dataDir), `the data directory is synced (opened: ${opened})`);
    assert.ok(opened.includes(dir), `the store directory is synced (opened: ${opened})`);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
