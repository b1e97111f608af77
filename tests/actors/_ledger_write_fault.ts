/**
 * A ledger write that fails with a disk error, during a ValidatorActor's challenge: the fake
 * fault (the ledger log's append throws before writing, or the history index's apply throws
 * after the entry is durable, once, during one named ledger call) and the run around it — a
 * worker's job announced to a validator that challenges everything, the crash, the supervisor's
 * restart with the ledger reopened from disk, and the window closed; or a peer's fraud proof in
 * the validator's hands when a write fails. For `validator_challenge_endings_test.ts`. No clock is
 * raced: the ledger's clock is the test's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { CHALLENGE_ENDINGS_DIR } from "../../actors/_challenge_endings.ts";
import { OWN_FRAUD_PROOFS_DIR } from "../../actors/_receipt_files.ts";
import type {
  FraudProofHandled,
  ValidatorMessage,
  ValidatorModelSource,
} from "../../actors/validator_messages.ts";
import type { TextModel } from "../../inference/text_model.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LedgerLog } from "../../proof/ledger_log.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { eventually } from "../_helpers/wait.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  type ValidatorSetup,
} from "./_validator_fixture.ts";

/** The worker's stake. */
export const STAKE = 10_000;
const NETWORK = "test/network";

/** Where the fake disk error strikes: before the entry is written, or after it is durable. */
export type Fault = "append" | "index";

/** The ledger calls a challenge's ending makes, whose write is made to fail. */
export type EndingCall =
  | "recordVerdict"
  | "clearChallenge"
  | "settleFraud"
  | "settleFault"
  | "settleStreamFraud";

/** An I/O error as the OS reports one. */
function ioError(): Error {
  return Object.assign(new Error("Input/output error (os error 5) (simulated)"), { code: "EIO" });
}

/** A ledger log append held by {@link holdNextAppend}. */
export interface HeldAppend {
  /** Resolves once the append is under way. */
  called: Promise<void>;
  /** Let the held append throw (an I/O error, nothing written). */
  fail: () => void;
  /** Put the log's append back (if the held one never came). */
  restore: () => void;
}

/**
 * The next ledger log append waits for `fail()`, then throws (nothing written): a write that is
 * under way while the test lines up what comes next (the validator that owns the log is busy with
 * it until then, and crashes with what is queued). `under`: only an append to a log under that
 * directory is held (one node's ledger among several); others write as usual.
 */
export function holdNextAppend(under?: string): HeldAppend {
  const append = LedgerLog.prototype.append;
  const called = Promise.withResolvers<void>();
  const failed = Promise.withResolvers<void>();
  LedgerLog.prototype.append = function (this: LedgerLog, frame: Uint8Array) {
    if (under !== undefined && !this.path.startsWith(under)) return append.call(this, frame);
    LedgerLog.prototype.append = append;
    called.resolve();
    return failed.promise.then(() => Promise.reject(ioError()));
  };
  return {
    called: called.promise,
    fail: () => failed.resolve(),
    restore: () => {
      LedgerLog.prototype.append = append;
    },
  };
}

/**
 * During the first `times` calls of ledger method `method`, one write each fails: `append`, the
 * log's append throws before writing (the entry is lost); `index`, the history index's apply
 * throws after the log append (the entry is durable, the crash comes after it). Returns the undo.
 */
export function failDuring(method: EndingCall, fault: Fault, times: number): () => void {
  const original = Ledger.prototype[method] as (...args: unknown[]) => Promise<unknown>;
  const append = LedgerLog.prototype.append;
  const apply = LedgerIndex.prototype.apply;
  let armed = times;
  const restore = () => {
    Object.assign(Ledger.prototype, { [method]: original });
    LedgerLog.prototype.append = append;
    LedgerIndex.prototype.apply = apply;
  };
  Object.assign(Ledger.prototype, {
    [method](this: Ledger, ...args: unknown[]) {
      if (armed === 0) return original.apply(this, args);
      armed--;
      if (fault === "append") {
        LedgerLog.prototype.append = function () {
          LedgerLog.prototype.append = append;
          return Promise.reject(ioError());
        };
      } else {
        LedgerIndex.prototype.apply = function () {
          LedgerIndex.prototype.apply = apply;
          throw ioError();
        };
      }
      return original.apply(this, args);
    },
  });
  return restore;
}

/**
 * What a run works on: a temp dir holding `me`'s ledger, the ledger's clock, system `name` whose
 * validator's crashes and restarts are counted, and a worker's job proved on `model`.
 */
async function faultRun(name: string, model: TextModel) {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, worker, requester] = Array.from({ length: 3 }, Identity.generate);
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, model);
  const id = receiptId(proved.receipt);
  const system = new ActorSystem({ name });
  const counts = { crashes: 0, restarts: 0 };
  system.events.subscribe((event) => {
    if (event.name !== "node/validator") return;
    if (event.type === "crashed") counts.crashes++; // a failed start, too
    if (event.type === "restarted") counts.restarts++;
  });
  const ledgerDir = `${dir}/ledger`;
  return {
    ledgerDir,
    clock,
    system,
    counts,
    me,
    worker,
    requester,
    job,
    proved,
    id,
    /** Spawn `me`'s validator, `node/validator`, on the run's ledger and clock. */
    spawn: (
      options: Omit<ValidatorSetup, "identity" | "ledgerDir" | "clock">,
    ): Promise<ActorRef<ValidatorMessage>> =>
      spawnValidator(system, { identity: me, ledgerDir, clock, ...options }),
    /** Shut the system down and remove the dir. */
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** What slashing `receipt` takes (its lock). */
export function slashOf(receipt: Receipt): number {
  return receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
    DEFAULT_ECONOMICS.slashMultiplier;
}

/** What the worker did, and where its proof data comes from. */
export type Work = "honest" | "cheat" | "withheld";

/** How {@link endingWriteFails} runs, beyond the work and the fault. */
export interface EndingWriteOptions {
  /** How many calls of the method fail, one write each; default 1. */
  times?: number;
  /** Give the validator a network that records what it is told. */
  network?: boolean;
  /** Run before the ledger is reopened at the restart (first restart only). */
  beforeReopen?: (ledgerDir: string, id: string) => Promise<void>;
  /** The validator's models; default {@link HONEST_MODELS}. */
  models?: ValidatorModelSource;
  /** Run once the challenge ended after the restart, before the window closes. */
  beforeClose?: (validator: ActorRef<ValidatorMessage>) => Promise<void>;
}

/**
 * `work` announced to a validator that challenges everything, whose ending write fails once
 * (`fault`, during `method`): the validator crashes, is restarted, and its window closes.
 * Returns the worker's and the validator's accounts after it, the receipt's status, how many
 * times the validator crashed (a start that failed included), its stats and what its network
 * was told.
 */
export async function endingWriteFails(
  work: Work,
  method: EndingCall,
  fault: Fault,
  { times = 1, network = false, beforeReopen, models = HONEST_MODELS, beforeClose }:
    EndingWriteOptions = {},
) {
  const model = work === "cheat" ? f.otherSeed : f.honest;
  const run = await faultRun(`ledger-write-${work}-${fault}`, model);
  const { ledgerDir, clock, system, counts, me, worker, requester, job, proved, id } = run;
  const told: NetworkMessage[] = [];
  if (network) {
    await system.spawn<NetworkMessage>({
      name: NETWORK,
      factory: () => new RecordingNetwork(told),
    });
  }
  const restore = failDuring(method, fault, times);
  const open = Ledger.open;
  let opens = 0;
  Ledger.open = async (...args: Parameters<typeof Ledger.open>) => {
    if (++opens === 2) await beforeReopen?.(args[0], id);
    return open.apply(Ledger, args);
  };
  try {
    const validator = await run.spawn({
      challengeProbability: 1,
      network: network ? NETWORK : undefined,
      models,
      source: {
        proof: () =>
          Promise.resolve(
            work === "withheld" ? undefined : signServedProof(id, proved.proof, worker),
          ),
      },
    });
    await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    assert.equal(handled.challenged, true);
    handled.result?.catch(() => {});
    const ledger = ledgerReads(() => validator, clock);
    await eventually(() => counts.restarts > 0, "the validator to crash and be restarted");
    await eventually(
      async () => (await ledger.record(id))?.status !== "challenged",
      "the challenge to end after the restart",
    );
    await ledger.drained();
    await beforeClose?.(validator);
    await ledger.closeWindow();
    // Nothing is left kept once the ledger has every ending.
    for (const folder of [CHALLENGE_ENDINGS_DIR, OWN_FRAUD_PROOFS_DIR]) {
      const kept = await Array.fromAsync(Deno.readDir(`${ledgerDir}/${folder}`)).catch(() => []);
      assert.deepEqual(kept, [], `${folder} still keeps an ending`);
    }
    const reward = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice;
    return {
      status: (await ledger.record(id))?.status,
      worker: await ledger.account(worker.publicKey),
      validator: await ledger.account(me.publicKey),
      reward,
      /** What slashing the receipt takes (its lock). */
      slash: slashOf(proved.receipt),
      crashes: counts.crashes,
      stats: await ledger.stats(),
      told,
    };
  } finally {
    restore();
    Ledger.open = open;
    await run.close();
  }
}

/**
 * Where the ledger fails while a peer's fraud proof is in this validator's hands: `settlement`,
 * the write of its own settlement (after its check); `checked`, another message's write, with
 * the proof checked and its settlement queued behind that message (discarded with the crash).
 */
export type PeerProofFault = "settlement" | "checked";

/**
 * A cheat's receipt recorded (not drawn here), and a staked peer's fraud proof of it taken while
 * the ledger fails (`fault`): the validator crashes, is restarted, and the proof's window closes.
 * Returns the cheat's and the accuser's accounts, the receipt's status and the crashes.
 */
export async function peerProofWriteFails(fault: PeerProofFault) {
  const run = await faultRun(`peer-proof-${fault}`, f.otherSeed);
  const { clock, system, counts, worker: cheat, requester, job, proved, id } = run;
  const accuser = Identity.generate();
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  assert.ok(fraudProof);
  // The model the proof is checked on loads only once the test lets it (`checked`).
  let modelGate: Promise<void> | undefined;
  const models = {
    get: async (cid: string) => {
      await modelGate;
      return await HONEST_MODELS.get(cid);
    },
  };
  const undo: (() => void)[] = [];
  try {
    const validator = await run.spawn({ challengeProbability: 0, models });
    for (const key of [cheat, accuser]) {
      await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    const handled = await announceAssigned(validator, proved.receipt, job, requester);
    assert.equal(handled.recorded, true);
    assert.equal(handled.challenged, false);
    const ledger = ledgerReads(() => validator, clock);
    // The accuser's proof, from a peer: queued for its check.
    const take = async () => {
      const taken = await validator.ask<FraudProofHandled>({
        type: "fraud_proof",
        proof: fraudProof,
        origin: "ab".repeat(32),
      });
      assert.equal(taken.queued, true);
    };
    if (fault === "settlement") {
      undo.push(failDuring("settleFraud", "append", 1));
      await take();
    } else {
      const model = Promise.withResolvers<void>();
      modelGate = model.promise;
      await take();
      // A deposit whose write is under way, then fails, while the proof's check ends and its
      // settlement waits in the mailbox behind it.
      const write = holdNextAppend();
      undo.push(write.restore);
      const deposit = validator.ask({ type: "deposit", key: requester.publicKey, amount: 1 });
      deposit.catch(() => {});
      await write.called;
      modelGate = undefined;
      model.resolve();
      const queued = () => system.tree().children.find((n) => n.name === "node/validator");
      await eventually(
        () => (queued()?.mailbox?.size ?? 0) > 0,
        "the checked proof's settlement to wait in the mailbox",
      );
      write.fail();
    }
    await eventually(() => counts.restarts > 0, "the validator to crash and be restarted");
    // What the restart took up is checked and settled (nothing, if it took up nothing).
    await eventually(
      async () => (await ledger.stats()).fraudProofsChecking === 0,
      "the proofs taken up at the restart to be settled",
    );
    await ledger.closeWindow();
    return {
      status: (await ledger.record(id))?.status,
      cheat: await ledger.account(cheat.publicKey),
      accuser: await ledger.account(accuser.publicKey),
      slash: slashOf(proved.receipt),
      crashes: counts.crashes,
    };
  } finally {
    for (const restore of undo) restore();
    await run.close();
  }
}
