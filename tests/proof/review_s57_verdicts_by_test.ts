/**
 * `Ledger.verdictsBy` (review s57): one validator's verdicts, and its verdicts about one worker,
 * read through an index instead of decoding every verdict the ledger holds (200,000 took 2 to
 * 3 s, at every ValidatorActor start and every steering conviction). It must return exactly what
 * filtering `verdicts()` did, other validators' verdicts left out, and an index written before
 * verdicts carried their validator and target must be upgraded when the ledger opens.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { ownEndChoices } from "../../proof/steering.ts";
import { settleSteering } from "../../actors/_steering_settlement.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import { assigned, receipt, withLedgerDir } from "./_ledger_fixtures.ts";

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
