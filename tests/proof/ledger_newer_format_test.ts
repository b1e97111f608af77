/**
 * A ledger a newer version wrote (an entry of a kind this version does not know, review s72):
 * refused by the open, `ledger verify`, `ledger repair` and the node's start with
 * `ledger_newer_format`, and left as it is — never skipped (balances wrong, a checkpoint signed
 * without it) nor cut as damage.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  Ledger,
  type LedgerEntry,
  LedgerNewerFormatError,
  LedgerTamperedError,
} from "../../proof/ledger.ts";
import {
  ChainVerifier,
  decodeEntry,
  encodeEntryFrame,
  entryHash,
  signEntry,
} from "../../proof/ledger_entry.ts";
import { LedgerState } from "../../proof/ledger_state.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { repairLedger } from "../../proof/ledger_repair.ts";
import { runLedger } from "../../cli/ledger_command.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { copyDir, frameOffsets, withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const worker = Identity.generate();
/** A kind no version of this one knows, as a newer version might add one. */
const FUTURE_KIND = "stake_withdrawal";

/** The last entry of the log in `dir`. */
async function lastEntry(dir: string): Promise<LedgerEntry> {
  const bytes = await Deno.readFile(join(dir, "ledger.log"));
  const at = frameOffsets(bytes).at(-1)!;
  const length = new DataView(bytes.buffer, at).getUint32(0);
  return decodeEntry(bytes.subarray(at + 4, at + 4 + length))!;
}

/**
 * Append to the log in `dir` an entry of {@link FUTURE_KIND}, linked and signed by `by` as a
 * newer version writes it; `damage` flips a byte of its signature after signing.
 */
async function appendFutureEntry(dir: string, by: Identity, damage = false): Promise<void> {
  const last = await lastEntry(dir);
  const entry = signEntry({
    seq: last.seq + 1,
    prev: entryHash(last),
    at: last.at + 1,
    kind: FUTURE_KIND as LedgerEntry["kind"],
    body: { key: toHex(worker.publicKey), amount: 900 },
    signer: by.publicKey,
  }, by);
  if (damage) entry.sig[0] ^= 0xff;
  const file = await Deno.open(join(dir, "ledger.log"), { append: true });
  try {
    await file.write(encodeEntryFrame(entry));
  } finally {
    file.close();
  }
}

/** Every file in `dir` with its bytes: what "left as it is" compares. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    files.set(entry.name, toHex(await Deno.readFile(join(dir, entry.name))));
  }
  return files;
}

/** A ledger of genesis and a deposit, closed (checkpoint written), then a newer kind after it. */
async function newerLedger(dir: string): Promise<void> {
  const ledger = await Ledger.open(dir, owner);
  await ledger.deposit(worker.publicKey, 1000);
  await ledger.close();
  await appendFutureEntry(dir, owner);
}

Deno.test("an entry of a kind this version does not know refuses the open with ledger_newer_format, and the ledger is left as it is", () =>
  withLedgerDir(async (dir) => {
    await newerLedger(dir);
    const before = await snapshot(dir);
    const refused = await Ledger.open(dir, owner).then(() => null, (e) => e);
    assert.ok(refused instanceof LedgerNewerFormatError, String(refused));
    assert.equal(refused.code, "ledger_newer_format");
    assert.equal(refused.seq, 2);
    assert.equal(refused.kind, FUTURE_KIND);
    assert.match(
      refused.message,
      /a newer version of Veriflow wrote this ledger \(.*\); run that version/,
    );
    assert.ok(!(refused instanceof LedgerTamperedError));
    // Nothing appended, no checkpoint signed over it, no tail cut or set aside.
    assert.deepEqual(await snapshot(dir), before);
  }));

Deno.test("ledger verify reports a newer version's entry as ledger_newer_format, not damage; ledger repair refuses it and cuts nothing", () =>
  withLedgerDir(async (dir) => {
    await newerLedger(dir);
    await appendFutureEntry(dir, owner); // a second one after it: counted, not checked
    const before = await snapshot(dir);
    const report = await verifyLedger(dir);
    assert.equal(report.ok, false);
    assert.equal(report.entries, 2);
    assert.deepEqual(
      { code: report.damage?.code, kind: report.damage?.kind, seq: report.damage?.seq },
      { code: "ledger_newer_format", kind: FUTURE_KIND, seq: 2 },
    );
    assert.equal(report.framesAfterDamage, 1);
    const refused = await repairLedger(dir, owner).then(() => null, (e) => e);
    assert.ok(refused instanceof LedgerNewerFormatError, String(refused));
    assert.equal(refused.seq, 2);
    assert.deepEqual(await snapshot(dir), before, "repair cut nothing and set nothing aside");
  }));

Deno.test("an unknown kind whose signature does not verify is damage (ledger_tampered), not a newer format", () =>
  withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, owner);
    await ledger.deposit(worker.publicKey, 1000);
    await ledger.close();
    await appendFutureEntry(dir, owner, true);
    await appendFutureEntry(dir, owner); // a whole entry after it: not a torn tail either
    const refused = await Ledger.open(dir, owner).then(() => null, (e) => e);
    assert.ok(refused instanceof LedgerTamperedError, String(refused));
    assert.equal((await verifyLedger(dir)).damage?.code, "ledger_tampered");
  }));

Deno.test("where a checkpoint vouches for the entries (signatures not checked), an unknown kind is still refused: as newer when its signature holds, as damage when not", () =>
  withLedgerDir(async (dir) => {
    // The chain an open reads to rebuild a lost history index up to a checkpoint a newer
    // version signed over such an entry.
    await newerLedger(dir);
    const damaged = await copyDir(dir);
    try {
      await Deno.truncate(
        join(damaged, "ledger.log"),
        frameOffsets(await Deno.readFile(join(dir, "ledger.log")))[2],
      );
      await appendFutureEntry(damaged, owner, true);
      const results: unknown[] = [];
      for (const d of [dir, damaged]) {
        const chain = new ChainVerifier({ owner: owner.publicKey, signatures: false });
        const bytes = await Deno.readFile(join(d, "ledger.log"));
        results.push(
          await (async () => {
            for (const at of frameOffsets(bytes)) {
              const length = new DataView(bytes.buffer, at).getUint32(0);
              await chain.next(bytes.subarray(at + 4, at + 4 + length));
            }
          })().then(() => null, (e) => e),
        );
      }
      assert.ok(results[0] instanceof LedgerNewerFormatError, String(results[0]));
      assert.ok(results[1] instanceof LedgerTamperedError, String(results[1]));
    } finally {
      await Deno.remove(damaged, { recursive: true });
    }
  }));

Deno.test("the working state refuses to apply an entry of an unknown kind rather than skip it", () => {
  const state = new LedgerState();
  assert.throws(
    () =>
      state.apply({
        seq: 7,
        prev: "",
        at: 0,
        kind: FUTURE_KIND as LedgerEntry["kind"],
        body: {},
        signer: owner.publicKey,
        sig: new Uint8Array(64),
      }),
    (e) => e instanceof LedgerNewerFormatError && e.seq === 7 && e.kind === FUTURE_KIND,
  );
});

Deno.test("cli.ts ledger verify and ledger repair say ledger_newer_format, exit 1, and suggest no repair", () =>
  withLedgerDir(async (dataDir) => {
    const dir = join(dataDir, "ledger");
    await Deno.writeFile(join(dataDir, "identity.key"), owner.exportSecretKey());
    await Deno.mkdir(dir);
    await newerLedger(dir);
    const before = await snapshot(dir);
    const run = async (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runLedger(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    const verified = await run("verify", "--data", dataDir);
    assert.equal(verified.code, 1, verified.err);
    assert.match(verified.out, /ledger_newer_format.*entry 2 has kind "stake_withdrawal"/);
    assert.match(verified.out, /run the newer version that wrote the ledger/);
    assert.doesNotMatch(verified.out, /ledger repair --data/);
    const repaired = await run("repair", "--data", dataDir);
    assert.equal(repaired.code, 1, repaired.out);
    assert.match(repaired.err, /^error \[ledger_newer_format\]: .*run that version/);
    assert.deepEqual(await snapshot(dir), before);
  }));

Deno.test("a node whose ledger a newer version wrote does not start: ledger_newer_format, the log unchanged", () =>
  withLedgerDir(async (dataDir) => {
    const dir = join(dataDir, "ledger");
    await Deno.writeFile(join(dataDir, "identity.key"), owner.exportSecretKey());
    await Deno.mkdir(dir);
    await newerLedger(dir);
    const log = await Deno.readFile(join(dir, "ledger.log"));
    const config = parseNodeConfig({
      dataDir,
      roles: { storage: false, inference: false, prover: false, validator: true },
      http: { port: 0 },
      network: { listening: false },
      heartbeatMs: 0,
    });
    const refused = await startNode(config, { models: new ModelRegistry() }).then(
      async (node) => {
        await node.shutdown();
        return null;
      },
      (e) => e,
    );
    assert.notEqual(refused, null, "the node started");
    assert.match(
      String(refused?.message ?? refused),
      /newer version of Veriflow wrote this ledger/,
    );
    assert.deepEqual(await Deno.readFile(join(dir, "ledger.log")), log);
  }));
