/**
 * Review s56: the validator's memory of peers' receipts (`_validator_memory.ts`, `remember` /
 * `recent`), kept with their jobs for taking over a "proof withheld" claim, and mirrored on disk
 * in `<ledger dir>/pending-receipts/`, was bounded by count only (4096). A job crossing nodes may
 * take up to `MAX_NETWORK_JOB_BYTES` (448 KiB), and a receipt locks only its token count times the
 * slash multiplier (a default self-stake backs thousands), so one staked key announcing receipts
 * for jobs near that size grew the memory, and the folder, to about 1.8 GB.
 *
 * The bound chosen: 64 MiB of kept records (the canonical CBOR of `{ receipt, job }`, what each
 * file holds) besides the 4096, oldest forgotten first. Honest jobs are a few KiB (4096 of them
 * take a few MiB, so the count stays the bound that binds), and 64 MiB is what the validator's
 * other floods may add (`MAX_HELD_FRAUD_PROOFS`, `MAX_KEPT_TAKEN_FRAUD_PROOFS`: 64 frames).
 *
 * What it costs, asserted on the ledger: a claim about a receipt forgotten is not taken over (no
 * crash; the worker is paid here, as a receipt past the count bound was before), and a claim
 * about one remembered still is (the worker that withholds is slashed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { PENDING_RECEIPTS_DIR, ReceiptFiles } from "../../actors/_receipt_files.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { ValidatorMemory } from "../../actors/_validator_memory.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, MAX_NETWORK_JOB_BYTES, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";

/** The bound this review chose for what the memory (and so the folder) keeps: 64 MiB. */
const BOUND = 64 * 1024 * 1024;
/** Kept records past the bound in a flood: 160 near-maximal jobs take about 70 MiB. */
const FLOOD = 160;
/** A prompt that leaves a job just inside `MAX_NETWORK_JOB_BYTES`. */
const BIG_PROMPT = "x".repeat(MAX_NETWORK_JOB_BYTES - 1024);

/** What a remembered receipt costs: the record kept on disk for it. */
const keptBytes = (receipt: unknown, job: unknown) => encodeCanonical({ receipt, job }).length;

Deno.test("the memory of peers' receipts keeps at most 64 MiB of receipts and jobs, forgetting the oldest first", () => {
  const memory = new ValidatorMemory();
  // Stand-ins: a receipt's id is the hash of its fields, and nothing else is read here.
  const receipt = (n: number) => ({ n }) as unknown as Receipt;
  const job = (n: number) => ({ prompt: BIG_PROMPT, nonce: `${n}` }) as never;
  const ids: string[] = [];
  const forgotten: string[] = [];
  for (let n = 0; n < FLOOD; n++) {
    ids.push(receiptId(receipt(n)));
    forgotten.push(...memory.remember(receipt(n), job(n)));
  }
  const kept = ids.filter((id) => memory.recent(id) !== undefined);
  const bytes = kept.reduce((sum, id) => {
    const { receipt, job } = memory.recent(id)!;
    return sum + keptBytes(receipt, job);
  }, 0);
  assert.ok(bytes <= BOUND, `remembered ${bytes} bytes, over ${BOUND}`);
  // No more forgotten than the bound needs: one more record would not fit.
  assert.ok(bytes + keptBytes(receipt(0), job(0)) > BOUND, "forgot more than it had to");
  assert.deepEqual(kept, ids.slice(ids.length - kept.length), "the newest are kept");
  assert.deepEqual(forgotten, ids.slice(0, ids.length - kept.length), "the oldest told, in order");
  // What the memory forgot leaves its count too: forgetting the rest frees the bytes.
  assert.deepEqual(memory.forgetRecentUnless(() => false), kept);
  memory.remember(receipt(-1), job(-1));
  assert.notEqual(memory.recent(receiptId(receipt(-1))), undefined, "room again");
});

/** Bytes of the files in `ledgerDir`'s `pending-receipts/`, and how many there are. */
function pendingFolder(ledgerDir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const entry of Deno.readDirSync(join(ledgerDir, PENDING_RECEIPTS_DIR))) {
    files++;
    bytes += Deno.statSync(join(ledgerDir, PENDING_RECEIPTS_DIR, entry.name)).size;
  }
  return { files, bytes };
}

/**
 * A withholding worker's receipt, then `FLOOD` receipts of another staked key for jobs near the
 * size a job may cross nodes at (each consistent with its job: the same model and parameters, its
 * input's commitment), then the worker's second receipt, each announced to a validator (p = 0:
 * nothing drawn; proof data withheld from it) on a clock one millisecond later than the one
 * before. Then `between` runs (it may restart the validator, and is given what was announced);
 * then a staked peer claims the worker withheld both receipts
 * (on the validator `between` returns). Returns the older and newer receipts' status and credit
 * or lock, the worker's account after the window, and the takeovers.
 */
async function floodThenClaims(
  ledgerDir: string,
  between: (
    v: ActorRef<ValidatorMessage>,
    restart: () => Promise<ActorRef<ValidatorMessage>>,
    announced: { receipt: Receipt; job: TextJob }[],
  ) => Promise<ActorRef<ValidatorMessage>>,
) {
  const clock = { t: START };
  const me = Identity.generate();
  const worker = Identity.generate(); // withholds its proof data from everyone
  const flooder = Identity.generate();
  const claimant = Identity.generate();
  const requester = Identity.generate();
  const [oldJob, newJob] = [textJob(requester, "bytes-old"), textJob(requester, "bytes-new")];
  const [older, newer] = [await proveOn(oldJob, worker), await proveOn(newJob, worker)];
  const [oldId, newId] = [receiptId(older.receipt), receiptId(newer.receipt)];
  const { receipt: shape } = await proveOn(textJob(requester, "bytes-shape"), flooder);
  const { sig: _sig, worker: _worker, ...unsigned } = shape;
  const flood = Array.from({ length: FLOOD }, (_, n) => {
    const job: TextJob = { ...textJob(requester, `bytes-flood-${n}`), prompt: BIG_PROMPT };
    const receipt = signReceipt(
      { ...unsigned, jobId: jobId(job), inputHash: inputHashOf(job) },
      flooder,
    );
    return { receipt, job };
  });
  const announced = [
    { receipt: older.receipt, job: oldJob },
    ...flood,
    { receipt: newer.receipt, job: newJob },
  ];
  const systems: ActorSystem[] = [];
  const start = () => {
    const system = new ActorSystem({ name: `s56-memory-bytes-${systems.length}` });
    systems.push(system);
    return spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
      source: { proof: () => Promise.resolve(undefined) },
    });
  };
  try {
    let v = await start();
    await v.ask({ type: "deposit", key: worker.publicKey, amount: 10_000 });
    await v.ask({ type: "deposit", key: claimant.publicKey, amount: 10_000 });
    await v.ask({ type: "deposit", key: flooder.publicKey, amount: 1_000_000 });
    for (const { receipt, job } of announced) {
      clock.t++;
      assert.equal((await announceAssigned(v, receipt, job, requester)).recorded, true);
    }
    v = await between(v, async () => {
      await systems.at(-1)!.shutdown();
      return await start();
    }, announced);
    const ledger = ledgerReads(() => v, clock);
    for (const id of [oldId, newId]) {
      const claim = withheldVerdict(id, worker.publicKey, START, claimant);
      const recorded = await v.ask({
        type: "verdict",
        verdict: claim,
        origin: toHex(claimant.publicKey),
      });
      assert.equal(typeof recorded, "string", "the claim is recorded either way");
    }
    await ledger.drained();
    const { challenged } = await ledger.stats();
    const [{ credit }, { locked }] = [(await ledger.record(oldId))!, (await ledger.record(newId))!];
    await ledger.closeWindow();
    return {
      challenged,
      older: (await ledger.record(oldId))?.status,
      newer: (await ledger.record(newId))?.status,
      credit,
      locked,
      account: await ledger.account(worker.publicKey),
      kept: pendingFolder(ledgerDir).files,
    };
  } finally {
    for (const system of systems) await system.shutdown();
  }
}

Deno.test("a flood of receipts for near-maximal jobs keeps at most 64 MiB on disk: a claim about a receipt forgotten is not taken over (paid here), one about a receipt remembered is (slashed)", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const r = await floodThenClaims(ledgerDir, (v) => {
      const { files, bytes } = pendingFolder(ledgerDir);
      assert.ok(
        bytes <= BOUND,
        `${files} receipts kept on disk take ${bytes} bytes, over ${BOUND}`,
      );
      return Promise.resolve(v);
    });
    assert.equal(r.challenged, 1, "only the remembered one taken over");
    assert.equal(r.older, "final", "forgotten: not taken over, paid here");
    assert.equal(r.newer, "fraud", "remembered: taken over, slashed");
    assert.deepEqual(r.account, { balance: r.credit, stake: 10_000 - r.locked, locked: 0 });
    assert.equal(r.kept, 0, "the window closed: nothing kept");
  });
});

Deno.test("at the start, receipts kept over 64 MiB (by a version bounded by count only) are pruned to the newest: a claim about the newest is taken over after the restart, one about the oldest is not", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const r = await floodThenClaims(ledgerDir, async (_, restart, announced) => {
      // What a version bounded by count only left: every receipt's record, over the bound.
      const folder = ReceiptFiles.in(ledgerDir, PENDING_RECEIPTS_DIR, { durable: false });
      for (const { receipt, job } of announced) {
        await folder.save(receiptId(receipt), { receipt, job });
      }
      assert.ok(pendingFolder(ledgerDir).bytes > BOUND);
      const v = await restart();
      const { files, bytes } = pendingFolder(ledgerDir);
      assert.ok(bytes <= BOUND, `${files} receipts kept after the start take ${bytes} bytes`);
      return v;
    });
    assert.equal(r.challenged, 1, "only the remembered one taken over");
    assert.equal(r.older, "final");
    assert.equal(r.newer, "fraud");
    assert.deepEqual(r.account, { balance: r.credit, stake: 10_000 - r.locked, locked: 0 });
  });
});
