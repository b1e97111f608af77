/**
 * The ledger's history index (`index.sqlite`): derived data, rebuilt from the log when damaged,
 * and the verdict index `Ledger.verdictsBy` reads.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { repairLedger } from "../../proof/ledger_repair.ts";
import { assigned, jobIdOf, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { ownEndChoices } from "../../proof/steering.ts";
import { settleSteering } from "../../actors/_steering_settlement.ts";
import { toHex } from "../../protocols/hash.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";

// The history index (`index.sqlite`) is derived data: a damaged one is deleted and built anew from
// the log when the ledger opens, and `ledger repair` always builds it anew.

const owner = Identity.generate();
const worker = Identity.generate();

/** A ledger with `n` receipts recorded, closed. */
async function withReceipts(dir: string, clock: { t: number }, n: number): Promise<void> {
  const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
  await ledger.deposit(worker.publicKey, 1e9);
  for (let i = 1; i <= n; i++) {
    const r = receipt(i, 3, worker);
    await ledger.recordReceipt(r, assigned(r));
  }
  await ledger.close();
}

Deno.test("ledger: a damaged index.sqlite (garbled pages) is rebuilt from the log on open", () =>
  withLedgerDir(async (dir, clock) => {
    await withReceipts(dir, clock, 300);
    const path = `${dir}/index.sqlite`;
    const bytes = await Deno.readFile(path);
    assert.ok(bytes.length > 4096 * 4, "an index of several pages");
    bytes.fill(0xff, 4096 * 2); // a torn write, a bad sector: every page after the second
    await Deno.writeFile(path, bytes);

    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(ledger.length, 302);
    assert.equal(ledger.receiptOfJob(jobIdOf(1)), receiptId(receipt(1, 3, worker)));
    assert.equal(ledger.receipt(receiptId(receipt(300, 3, worker)))?.status, "pending");
    const next = receipt(5000, 3, worker);
    assert.equal((await ledger.recordReceipt(next, assigned(next))).status, "pending");
    await assert.rejects(() => ledger.recordReceipt(receipt(7, 3, worker)), {
      code: "duplicate_receipt",
    });
    await ledger.close();
    assert.equal((await verifyLedger(dir, { owner: owner.publicKey })).ok, true);
  }));

Deno.test("ledger repair always rebuilds the index, even when the log verifies", () =>
  withLedgerDir(async (dir, clock) => {
    await withReceipts(dir, clock, 3);
    // An index SQLite reads without complaint but that lost rows (a restored backup, an edit):
    // only the log can tell, and repair rebuilds from it.
    const db = new DatabaseSync(`${dir}/index.sqlite`);
    db.exec("DELETE FROM jobs; DELETE FROM receipts;");
    db.close();
    const repaired = await repairLedger(dir, owner, { now: () => clock.t });
    assert.equal(repaired.setAsideBytes, 0);
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(ledger.receiptOfJob(jobIdOf(2)), receiptId(receipt(2, 3, worker)));
    assert.equal(ledger.receipt(receiptId(receipt(3, 3, worker)))?.status, "pending");
    await ledger.close();

    // And a garbled one too: repair does not die on it.
    const bytes = await Deno.readFile(`${dir}/index.sqlite`);
    bytes.fill(0xff, 100);
    await Deno.writeFile(`${dir}/index.sqlite`, bytes);
    assert.equal((await repairLedger(dir, owner, { now: () => clock.t })).length, 5);
  }));

Deno.test("ledger: an index left with rows and no position (a reset cut short by a crash) is emptied before the rebuild: nothing of entries not in the log stays", () =>
  withLedgerDir(async (dir, clock) => {
    const opts = { now: () => clock.t };
    let ledger = await Ledger.open(dir, owner, opts);
    await ledger.deposit(worker.publicKey, 1e6);
    await ledger.close();
    // The older copy of the log and its checkpoint (a backup / restore).
    const oldLog = await Deno.readFile(join(dir, "ledger.log"));
    const oldCheckpoint = await Deno.readFile(join(dir, "checkpoint.cbor"));

    ledger = await Ledger.open(dir, owner, opts);
    const r = receipt(1, 10, worker);
    await ledger.recordReceipt(r, assigned(r));
    await ledger.openChallenge(receiptId(r));
    await ledger.settleFault(receiptId(r), owner.publicKey, "proof_unavailable");
    assert.equal(ledger.convicted(worker.publicKey), true);
    await ledger.close();

    // Restore the older log + checkpoint; index.sqlite stays ahead of them.
    await Deno.writeFile(join(dir, "ledger.log"), oldLog);
    await Deno.writeFile(join(dir, "checkpoint.cbor"), oldCheckpoint);

    // Control: without a crash, open resets the index and nothing of the lost entries remains.
    const control = `${dir}-control`;
    await Deno.mkdir(control);
    for await (const e of Deno.readDir(dir)) {
      await Deno.copyFile(join(dir, e.name), join(control, e.name));
    }
    const c = await Ledger.open(control, owner, opts);
    const controlView = {
      convicted: c.convicted(worker.publicKey),
      job: c.receiptOfJob(r.jobId) ?? null,
    };
    await c.close();
    await Deno.remove(control, { recursive: true });
    assert.deepEqual(controlView, { convicted: false, job: null });

    // Crash image: reset's first statement (DELETE FROM meta) committed, the rest never ran.
    const db = new DatabaseSync(join(dir, "index.sqlite"));
    db.exec("DELETE FROM meta;");
    db.close();

    ledger = await Ledger.open(dir, owner, opts);
    const view = {
      length: ledger.length,
      account: ledger.account(worker.publicKey),
      convicted: ledger.convicted(worker.publicKey),
      job: ledger.receiptOfJob(r.jobId) ?? null,
      receipt: ledger.receipt(receiptId(r))?.status ?? null,
    };
    // The receipt cannot be recorded again either: the stale row says it is already there.
    const again = await ledger.recordReceipt(r, assigned(r)).then(() => "recorded", (e) => e.code);
    await ledger.close();
    assert.deepEqual(
      { convicted: view.convicted, job: view.job, again },
      { convicted: false, job: null, again: "recorded" },
      "the index keeps a conviction and a job the log does not have",
    );
  }));

// `Ledger.verdictsBy`: one validator's verdicts, and its verdicts about one worker, read through an
// index instead of decoding every verdict the ledger holds (200,000 took 2 to 3 s, at every
// ValidatorActor start and every steering conviction). It must return exactly what filtering
// `verdicts()` did, other validators' verdicts left out, and an index written before verdicts
// carried their validator and target must be upgraded when the ledger opens.

const me = Identity.generate();
const peer = Identity.generate();
const other = Identity.generate();
const workerA = Identity.generate();
const workerB = Identity.generate();

let issued = 0;
/** A verdict of `by` about `target`'s `subjectId`, carrying end choices for inference ones. */
function verdict(
  by: Identity,
  target: Identity,
  subjectId: string,
  subject = "inference",
  passed = 1,
): Verdict {
  return signVerdict({
    v: 1,
    subject,
    subjectId,
    target: target.publicKey,
    outcome: "valid",
    reason: "ok",
    ...(subject === "inference" ? { details: { endPassed: passed, endTaken: 1 } } : {}),
    issuedAt: ++issued,
  }, by);
}

/** Verdicts of three validators about two workers, interleaved, one storage audit among them. */
function mixedVerdicts(): Verdict[] {
  const out: Verdict[] = [];
  for (let i = 0; i < 6; i++) {
    for (const by of [me, peer, other]) {
      out.push(verdict(by, i % 2 === 0 ? workerA : workerB, `r-${i}-${toHex(by.publicKey)}`));
    }
  }
  out.push(verdict(me, workerA, "audit-1", "storage"));
  out.push(verdict(peer, me, "r-about-me")); // a verdict about the validator itself
  return out;
}

/** What the callers filtered `verdicts()` down to before `verdictsBy` existed. */
function filtered(all: Verdict[], by: Identity, target?: Identity): Verdict[] {
  return all.filter((v) =>
    toHex(v.validator) === toHex(by.publicKey) &&
    (target === undefined || toHex(v.target) === toHex(target.publicKey))
  );
}

function assertSameAsFilter(ledger: Ledger): void {
  const all = ledger.verdicts();
  for (const by of [me, peer, other, workerA]) {
    assert.deepEqual(ledger.verdictsBy(by.publicKey), filtered(all, by), "by one validator");
    for (const target of [workerA, workerB, me]) {
      assert.deepEqual(
        ledger.verdictsBy(by.publicKey, target.publicKey),
        filtered(all, by, target),
        "by one validator about one target",
      );
    }
  }
}

Deno.test("verdictsBy returns exactly the validator's own verdicts (about one target when given), in the order recorded, others' left out", async () => {
  await withLedgerDir(async (dir) => {
    let ledger = await Ledger.open(dir, me);
    const recorded = mixedVerdicts();
    for (const v of recorded) await ledger.recordVerdict(v);
    await ledger.recordVerdict(recorded[0]); // recorded once
    const own = ledger.verdictsBy(me.publicKey);
    assert.equal(own.length, 7, "six inference verdicts and one storage audit");
    assert.ok(own.every((v) => toHex(v.validator) === toHex(me.publicKey)));
    assert.deepEqual(own, recorded.filter((v) => v.validator === me.publicKey), "in order");
    assert.equal(ledger.verdictsBy(me.publicKey, workerA.publicKey).length, 4);
    assertSameAsFilter(ledger);
    // What the steering record and the settlement read: the same end choices as before.
    assert.deepEqual(
      [...ownEndChoices(ledger.verdictsBy(me.publicKey), me.publicKey)],
      [...ownEndChoices(ledger.verdicts(), me.publicKey)],
    );
    assert.deepEqual(
      [...ownEndChoices(ledger.verdictsBy(me.publicKey, workerB.publicKey), me.publicKey)],
      [...ownEndChoices(ledger.verdicts(), me.publicKey)].filter((c) =>
        c.worker === toHex(workerB.publicKey)
      ),
    );
    await ledger.close();
    ledger = await Ledger.open(dir, me);
    assertSameAsFilter(ledger);
    await ledger.close();
    // Built anew from the log (a lost index), it answers the same.
    await Deno.remove(join(dir, INDEX_FILE));
    ledger = await Ledger.open(dir, me, { checkpointEvery: 0 });
    assertSameAsFilter(ledger);
    assert.equal(ledger.verdictsBy(me.publicKey).length, 7);
    await ledger.close();
  });
});

/** Turn the ledger's index back into the schema written before verdicts had their keys. */
function toOldSchema(dir: string): void {
  const db = new DatabaseSync(join(dir, INDEX_FILE));
  try {
    db.exec(`BEGIN;
      DROP INDEX verdicts_by_validator;
      CREATE TABLE verdicts_old (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, verdict BLOB NOT NULL);
      INSERT INTO verdicts_old SELECT seq, id, verdict FROM verdicts;
      DROP TABLE verdicts;
      ALTER TABLE verdicts_old RENAME TO verdicts;
      COMMIT;`);
    const columns = (db.prepare("PRAGMA table_info(verdicts)").all() as { name: string }[])
      .map((c) => c.name);
    assert.deepEqual(columns, ["seq", "id", "verdict"]);
  } finally {
    db.close();
  }
}

Deno.test("an index written before verdicts carried their validator and target is upgraded when the ledger opens: verdictsBy finds every verdict, old and new", async () => {
  await withLedgerDir(async (dir) => {
    let ledger = await Ledger.open(dir, me);
    const recorded = mixedVerdicts();
    for (const v of recorded) await ledger.recordVerdict(v);
    await ledger.close();
    toOldSchema(dir);
    ledger = await Ledger.open(dir, me);
    assert.equal(ledger.verdicts().length, recorded.length, "the rows were kept");
    assertSameAsFilter(ledger);
    assert.equal(ledger.verdictsBy(me.publicKey).length, 7);
    const later = verdict(me, workerB, "r-after-upgrade");
    await ledger.recordVerdict(later);
    assert.deepEqual(ledger.verdictsBy(me.publicKey, workerB.publicKey).at(-1), later);
    assertSameAsFilter(ledger);
    await ledger.close();
    // Rows an older version wrote into the upgraded table (no keys) are keyed at the next open.
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec("UPDATE verdicts SET validator = NULL, target = NULL WHERE seq % 2 = 0");
    db.close();
    ledger = await Ledger.open(dir, me);
    assertSameAsFilter(ledger);
    assert.equal(ledger.verdictsBy(me.publicKey).length, 8);
    await ledger.close();
  });
});

Deno.test("a steering settlement's evidence is the settling validator's own verdicts about the worker only, not a peer's about it", async () => {
  await withLedgerDir(async (dir) => {
    const ledger = await Ledger.open(dir, me);
    await ledger.deposit(workerA.publicKey, 1_000_000);
    await ledger.deposit(workerB.publicKey, 1_000_000);
    const mine = receipt(5701, 10, workerA);
    const peers = receipt(5702, 10, workerA);
    const taken = receipt(5703, 10, workerA);
    const elsewhere = receipt(5704, 10, workerB);
    for (const r of [mine, peers, taken, elsewhere]) await ledger.recordReceipt(r, assigned(r));
    await ledger.recordVerdict(verdict(me, workerA, receiptId(mine)));
    await ledger.recordVerdict(verdict(peer, workerA, receiptId(peers)));
    await ledger.recordVerdict(verdict(me, workerA, receiptId(taken), "inference", 0));
    await ledger.recordVerdict(verdict(me, workerB, receiptId(elsewhere)));
    const lines: string[] = [];
    await settleSteering(ledger, me.publicKey, workerA.publicKey, (line) => lines.push(line));
    assert.match(lines[0], /over 1 earlier receipts/);
    const cut = ledger.receipt(receiptId(mine))!.locked;
    assert.equal(ledger.account(workerA.publicKey).stake, 1_000_000 - cut, "only its own evidence");
    assert.equal(ledger.receipt(receiptId(mine))!.credit, 0);
    assert.ok(ledger.receipt(receiptId(peers))!.credit > 0, "a peer's verdict is not evidence");
    assert.ok(ledger.receipt(receiptId(taken))!.credit > 0, "no end passed over: not evidence");
    assert.ok(ledger.receipt(receiptId(elsewhere))!.credit > 0, "another worker's");
    await ledger.close();
  });
});
