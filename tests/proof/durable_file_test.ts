/**
 * Files that must survive a crash or a power cut: what `writeFileDurably` leaves behind when a
 * process dies inside it, and the worker's proof store.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { removeTemporaries, writeFileDurably } from "../../proof/_durable_file.ts";
import { KeptCborFile } from "../../proof/_kept_cbor_file.ts";
import { Ledger } from "../../proof/ledger.ts";
import { CHECKPOINT_FILE } from "../../proof/ledger_checkpoint.ts";
import { Identity } from "../../protocols/identity.ts";
import { OWN_FRAUD_PROOFS_DIR, ReceiptFiles } from "../../actors/_receipt_files.ts";
import {
  KeptHeldTrainingProofs,
  PLEDGE_HELD_TRAINING_PROOFS_DIR,
} from "../../training/_kept_held_training_proofs.ts";
import { ProofStore } from "../../proof/proof_store.ts";
import type { ProofData } from "../../proof/commitment.ts";

// What a process killed inside `writeFileDurably` leaves (its `<name>.<uuid>.tmp`) is removed by
// the stores that own the file at their start, and nothing else is.

/** A temporary file as `writeFileDurably` names one for `target`, left in `dir`. */
async function leftover(dir: string, target: string): Promise<string> {
  const name = `${target}.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(join(dir, name), new Uint8Array([1, 2, 3]));
  return name;
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("removeTemporaries removes the crashed writes' files of the targets asked for, and nothing else", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileDurably(join(dir, "a.cbor"), new Uint8Array([9]));
    await leftover(dir, "a.cbor");
    await leftover(dir, "a.cbor");
    const other = await leftover(dir, "b.cbor");
    // Not `writeFileDurably`'s naming: someone else's file, kept.
    await Deno.writeFile(join(dir, "notes.tmp"), new Uint8Array([1]));
    await Deno.mkdir(join(dir, `a.cbor.${crypto.randomUUID()}.tmp`)); // a directory: kept
    const removed = await removeTemporaries(dir, (name) => name === "a.cbor");
    assert.deepEqual(removed, 2);
    const left = await names(dir);
    assert.deepEqual(left.length, 4);
    assert.deepEqual(left.includes("a.cbor") && left.includes(other), true);
    assert.deepEqual(left.includes("notes.tmp"), true);
    // Every target by default.
    assert.deepEqual(await removeTemporaries(dir), 1);
    assert.deepEqual(await removeTemporaries(join(dir, "missing")), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a kept CBOR file's read at the start removes the temporary files of a keep cut short, and keeps its value", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "held-evidence.cbor");
    await new KeptCborFile(path).keep({ kept: 1 });
    await leftover(dir, "held-evidence.cbor");
    const neighbour = await leftover(dir, "other.cbor");
    assert.deepEqual(await new KeptCborFile(path).read(), { kept: 1 });
    assert.deepEqual(await names(dir), ["held-evidence.cbor", neighbour].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a ledger's open removes a checkpoint's temporary file a crash left, not the validator's beside it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const identity = Identity.generate();
    await (await Ledger.open(dir, identity)).close();
    await leftover(dir, CHECKPOINT_FILE);
    const set = await leftover(dir, "ledger.log.torn-2026-12-03T07-00-00.000Z");
    const validators = await leftover(dir, "held-evidence.cbor");
    const ledger = await Ledger.open(dir, identity);
    await ledger.close();
    const left = await names(dir);
    assert.deepEqual(left.filter((n) => n.endsWith(".tmp")), [validators]);
    assert.deepEqual(left.includes(set), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the proof folders' reads at the start remove the temporary files of saves cut short", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const own = ReceiptFiles.in(dir);
    const held = KeptHeldTrainingProofs.in(dir);
    for (const folder of [OWN_FRAUD_PROOFS_DIR, PLEDGE_HELD_TRAINING_PROOFS_DIR]) {
      await Deno.mkdir(join(dir, folder));
      await leftover(join(dir, folder), `${"ab".repeat(32)}.cbor`);
    }
    assert.deepEqual([...(await own.all()).keys()], []);
    assert.deepEqual(await held.read(), []);
    assert.deepEqual(await names(join(dir, OWN_FRAUD_PROOFS_DIR)), []);
    assert.deepEqual(await names(join(dir, PLEDGE_HELD_TRAINING_PROOFS_DIR)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// The worker's proof store against a power cut.

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
