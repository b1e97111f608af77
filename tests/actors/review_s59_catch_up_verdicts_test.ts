/**
 * Review s59: the catch-up's verdicts (the faults this validator decided, the endings its start
 * applied) are kept on disk (`actors/_catch_up.ts`, `<ledger dir>/catch-up-verdicts/`, one file
 * each by verdict id) and read back at a process's first start under the same bounds as in
 * memory — only those the ledger recorded, inside their receipt's window there; a damaged entry
 * logged and removed, never stopping the start. Before, they were kept in memory only, and a ledger
 * that met the validator only after its process restarted paid the worker that withheld
 * (`tests/network/review_s59_catchup_restart_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CATCH_UP_VERDICTS_DIR,
  CatchUp,
  MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES,
  MAX_CATCH_UP_VERDICTS,
} from "../../actors/_catch_up.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { MAX_NETWORK_JOB_BYTES } from "../../protocols/job.ts";
import { verdictId } from "../../protocols/verdict.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { keptFault } from "../network/_ledger_node.ts";
import { type WithheldFault, withheldFault } from "./_withheld_fault.ts";
import { catchUpAtStart, inLedgerDir, START } from "./_validator_fixture.ts";

/** A kept verdict with its evidence. */
type Fault = WithheldFault;

const by = Identity.generate();
const until = START + DEFAULT_ECONOMICS.challengeWindowMs;
const now = () => START;

/** A fault's verdict by `by` about a fresh receipt of `worker`, with its receipt and a job of `promptBytes`. */
function faultOf(worker: Identity, promptBytes = 16): Promise<Fault> {
  return withheldFault(worker, by, promptBytes, "s59-shape");
}

const verdictIds = (items: CatchUpItem[]) =>
  items.flatMap((item) => item.kind === "verdict" ? [verdictId(item.verdict)] : []);
/** The verdict ids with a file in the catch-up's verdict folder of `ledgerDir`. */
const filesIn = async (ledgerDir: string) =>
  (await Array.fromAsync(Deno.readDir(join(ledgerDir, CATCH_UP_VERDICTS_DIR))))
    .map((entry) => entry.name.replace(/\.cbor$/, "")).sort();

/** Copy directory `from` to `to` (a ledger directory at rest): a new process's view of it. */
async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const [src, dst] = [join(from, entry.name), join(to, entry.name)];
    if (entry.isDirectory) await copyDir(src, dst);
    else if (entry.isFile) await Deno.copyFile(src, dst);
  }
}

Deno.test("verdicts are read back from disk with their evidence, oldest first, and dropped past their window", () =>
  inLedgerDir(async (ledgerDir) => {
    const kept = new CatchUp(ledgerDir);
    const [a, b] = [Identity.generate(), Identity.generate()];
    await kept.add(await faultOf(a), until);
    await kept.add(await faultOf(b), START + 1);
    const read = await CatchUp.read(ledgerDir, { now });
    assert.deepEqual(read.current(START), kept.current(START), "the same items, evidence too");
    const later = await CatchUp.read(ledgerDir, { now: () => START + 2 });
    assert.deepEqual(
      verdictIds(later.current(START + 2)),
      verdictIds(kept.current(START)).slice(0, 1),
    );
    assert.deepEqual(await filesIn(ledgerDir), verdictIds(later.current(START + 2)));
    // Not recorded by the ledger: not read back, its file removed.
    const none = await CatchUp.read(ledgerDir, { now, recorded: () => undefined });
    assert.deepEqual(none.current(START), []);
    assert.deepEqual(await filesIn(ledgerDir), []);
  }));

Deno.test("bounds hold after reading back verdicts: 64, the worker with the most dropped first, its files removed; evidence past its byte bound dropped from the file too", () =>
  inLedgerDir(async (ledgerDir) => {
    // Two writers on one folder: more verdicts on disk than the bound.
    const [withholder, flooder] = [Identity.generate(), Identity.generate()];
    const first = new CatchUp(ledgerDir);
    const other = await faultOf(withholder);
    await first.add(other, until);
    const second = new CatchUp(ledgerDir);
    for (let i = 0; i < MAX_CATCH_UP_VERDICTS; i++) await second.add(await faultOf(flooder), until);
    assert.equal((await filesIn(ledgerDir)).length, MAX_CATCH_UP_VERDICTS + 1);
    const read = await CatchUp.read(ledgerDir, { now });
    const ids = verdictIds(read.current(START));
    assert.equal(ids.length, MAX_CATCH_UP_VERDICTS);
    assert.ok(
      ids.includes(verdictId(other.verdict)),
      "the other withholder's fault went",
    );
    assert.deepEqual(await filesIn(ledgerDir), [...ids].sort());

    // Evidence: past the byte bound the flooder's oldest give theirs up, on disk too.
    const big = new CatchUp(`${ledgerDir}-big`);
    const count = Math.ceil(MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES / MAX_NETWORK_JOB_BYTES) + 2;
    for (let n = 0; n < count; n++) {
      await big.add(await faultOf(flooder, MAX_NETWORK_JOB_BYTES - 1024), until);
    }
    const carried = (items: CatchUpItem[]) =>
      items.map((item) => item.kind === "verdict" && item.evidence !== undefined);
    const inMemory = carried(big.current(START));
    assert.ok(inMemory.includes(false) && inMemory.includes(true));
    const back = await CatchUp.read(`${ledgerDir}-big`, { now });
    assert.deepEqual(carried(back.current(START)), inMemory);
    let bytes = 0;
    for (const name of await filesIn(`${ledgerDir}-big`)) {
      bytes += (await Deno.stat(join(`${ledgerDir}-big`, CATCH_UP_VERDICTS_DIR, `${name}.cbor`)))
        .size;
    }
    assert.ok(bytes <= MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES + 64 * 2048, `${bytes} bytes on disk`);
    await Deno.remove(`${ledgerDir}-big`, { recursive: true });
  }));

Deno.test("at a validator's start, a fault it decided is read back from disk (a new process), and damaged or unrecorded verdict entries are removed, the damaged ones logged, the start going on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const me = Identity.generate();
    // A fault the first start applies (kept before a stop): its verdict kept for the catch-up.
    const work = await keptFault(join(dir, "a"), me, { t: START });
    const firstLife = await catchUpAtStart(join(dir, "a"), me);
    assert.equal(firstLife.items.length, 1);
    const [sound] = await filesIn(join(dir, "a"));
    // A new process on the same ledger (its catch-up read from disk), with damaged entries.
    const ledgerDir = join(dir, "b");
    await copyDir(join(dir, "a"), ledgerDir);
    const folder = join(ledgerDir, CATCH_UP_VERDICTS_DIR);
    const name = (i: number) => join(folder, `${i.toString(16).padStart(64, "a")}.cbor`);
    const bytes = await Deno.readFile(join(folder, `${sound}.cbor`));
    await Deno.writeFile(name(1), new Uint8Array([0xff, 0x00, 0x13])); // not CBOR
    await Deno.writeFile(name(2), bytes.subarray(0, bytes.length >> 1)); // cut short
    await Deno.writeFile(name(3), encodeCanonical({ seq: 0, until, item: { kind: "x" } }));
    await Deno.writeFile(name(4), bytes); // a sound verdict under another verdict's name
    // Evidence not bound to the verdict's receipt.
    const file = decodeCbor(bytes) as { seq: number; until: number; item: CatchUpItem };
    const stray = await faultOf(work.worker);
    const mismatched = {
      ...file,
      item: { ...file.item, evidence: stray.evidence },
    };
    await Deno.writeFile(name(5), encodeCanonical(mismatched));
    // Sound, but a verdict this ledger never recorded.
    const unrecorded = await faultOf(work.worker);
    const unrecordedId = verdictId(unrecorded.verdict);
    await Deno.writeFile(
      join(folder, `${unrecordedId}.cbor`),
      encodeCanonical({ seq: 1, until, item: unrecorded }),
    );
    const { items, log } = await catchUpAtStart(ledgerDir, me);
    assert.deepEqual(verdictIds(items), [sound], "the fault decided before the restart");
    assert.equal(log.filter((line) => line.includes("damaged")).length, 5, log.join("\n"));
    assert.deepEqual(await filesIn(ledgerDir), [sound]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a catch-up verdict folder that cannot be read does not stop the validator's start: logged, and no verdict read back", () =>
  inLedgerDir(async (ledgerDir) => {
    await Deno.mkdir(ledgerDir, { recursive: true });
    await Deno.writeFile(join(ledgerDir, CATCH_UP_VERDICTS_DIR), new Uint8Array([1])); // a file
    const { items, log } = await catchUpAtStart(ledgerDir, Identity.generate());
    assert.deepEqual(items, []);
    assert.ok(log.some((line) => line.includes("catch-up verdicts not read")), log.join("\n"));
  }));
