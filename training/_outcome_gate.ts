/**
 * The outcome gate: which round outcomes a TrainingValidator (`training_validator.ts`) audits,
 * and what it keeps of each audit. An audit (`round_audit.ts`) fetches a start model and a delta
 * file per report and redoes the outer step, so an outcome is audited only when it is worth that:
 *
 * - signed by its coordinator (`signed_outcome.ts`; this node's own coordinator signs too), and,
 *   from a peer, by a key that holds in this ledger at least the stake a ledger asks of a peer's
 *   accuser (`unstaked_coordinator`; a node without a ledger audits no peer's outcome; one whose
 *   ledger does not answer takes the outcome again later, `_outcome_audits.ts`) and is
 *   not benched here ({@link FALSE_OUTCOME_BENCH_MS});
 * - within its coordinator's budget ({@link MAX_AUDITS_PER_COORDINATOR}) and its relay's
 *   ({@link MAX_AUDITS_PER_PEER}), per {@link PEER_AUDIT_WINDOW_MS} (`audit_budget.ts`);
 * - a copy of a model not yet proven here, within the model's few audited copies
 *   ({@link MAX_AUDITS_PER_MODEL}): another staked key may sign a copy naming the honest model's
 *   CID with a report dropped, which fails its audit, and a copy that arrived first cannot shut
 *   out the genuine one.
 *
 * A refused outcome is logged and counted (`outcomesRefused`, the latest
 * {@link KEPT_OUTCOME_REFUSALS}), never passed on. After the audit the gate keeps its verdict: a
 * model reproduced (or not checkable here) is proven, and the momentum of a reproduced round is
 * kept for the next round's audit ({@link KEPT_MOMENTA}); a model that did not reproduce is
 * refused (`model_standing`), and its signer benched. The gate holds state and decisions only:
 * the validator asks its ledger, serves the model and passes the outcome on.
 *
 * **The momenta outlive a stop.** A reproduced round's momentum is written to
 * {@link OutcomeGateOptions.momentaDir} (`<model CID>.momentum.cbor`: its H, and the momentum as ONNX
 * weights under their SHA-256, the latest {@link KEPT_MOMENTA} files kept) before its audit
 * returns, and an audit whose start model's momentum is not in memory reads it there. Before
 * (review s61, `tests/training/outcome_audits_test.ts`) they were memory only: a
 * restarted training validator could audit no round after the first of a run it had followed
 * (`the round that made its start model was not seen`), so it took every later round unverified
 * and credited none of it — a peer's outcome kept for a ledger that did not answer and read back
 * at the start, and every round after, whose honest trainers every other ledger paid went unpaid
 * in this one. What is read is checked against its hash and its architecture (a file that is not
 * whole reads as not seen: a round taken unverified, never one refused, nor its coordinator
 * benched, for this node's own disk); it is this node's own computation on the operator's disk,
 * trusted as the ledger beside it is.
 *
 * @example
 * ```ts ignore
 * const gate = new OutcomeGate({ models, seen });
 * if (await gate.mayAudit(body, origin, stakeOf)) {
 *   const audit = await gate.audit(body, convicted);
 *   if (!audit.ok) gate.auditFailed(body, audit, origin);
 *   else if (gate.auditHeld(body, audit)) serve(body);
 * }
 * ```
 *
 * Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";
import { makeOwnerDir } from "../protocols/owner_only.ts";
import type { OutcomeBody } from "../protocols/training_messages.ts";
import type { EconomicParams } from "../proof/economics.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { RoundModels } from "./round_models.ts";
import {
  gptModelBytesFromWeights,
  type GptWeights,
  seededGptWeights,
  weightsFromOnnx,
} from "./gpt_weights.ts";
import { auditRound, type RoundAudit } from "./round_audit.ts";
import { AuditBudget } from "./audit_budget.ts";
import { outcomeSignature } from "./signed_outcome.ts";

/**
 * Outcomes, models and keys each table of the gate remembers: as many as the validator remembers
 * gossip items, far more than one node hears of in a window.
 */
const KEPT_KEYS = 4096;
/**
 * Distinct copies of a round's outcome audited before its model is given up on: the genuine one
 * and a few bad ones relayed before it; more would let anyone make every auditor re-fetch the
 * deltas and redo the outer step for free.
 */
const MAX_AUDITS_PER_MODEL = 4;
/**
 * Outcomes a peer may have relayed here for audit per {@link PEER_AUDIT_WINDOW_MS}. Each audit
 * fetches a start model and a delta file per report and redoes the outer step, while the
 * per-model bound is keyed by a CID the sender picks: before outcomes were signed, one peer
 * sending outcomes of fresh models had every one audited. Signed, each is charged to its
 * coordinator too ({@link MAX_AUDITS_PER_COORDINATOR}); this bound stays because stake is
 * self-pledged: one peer relaying the outcomes of many keys it pledged for gets no more than
 * this. A round makes one outcome, and honest peers pass on only what held in their own audit,
 * so the bound is far above what they send.
 */
export const MAX_AUDITS_PER_PEER = 8;
/** The window of {@link MAX_AUDITS_PER_PEER} and {@link MAX_AUDITS_PER_COORDINATOR}, ms. */
export const PEER_AUDIT_WINDOW_MS = 10 * 60_000;
/**
 * Outcomes one coordinator key may have audited here per {@link PEER_AUDIT_WINDOW_MS}, whoever
 * relays them: charged to the signer, so relays cannot launder one key's outcomes by passing
 * them on from many peers. A coordinator signs one outcome a round; the same as a peer's bound.
 */
export const MAX_AUDITS_PER_COORDINATOR = MAX_AUDITS_PER_PEER;
/**
 * How long a coordinator whose signed outcome failed its audit here has none of its outcomes
 * audited, ms: an hour, six audit windows. No relay can alter a signed outcome, so a failure is
 * the signer's own false claim; the ledger has no rule that slashes a coordinator for it,
 * so this node stops spending audits on that key for a while instead.
 */
export const FALSE_OUTCOME_BENCH_MS = 60 * 60_000;
/** Refused outcomes kept in the stats (the latest): a flood of them does not grow the node. */
const KEPT_OUTCOME_REFUSALS = 64;
/** Momenta of audited rounds kept (in memory, and on disk): the next round starts from the latest. */
const KEPT_MOMENTA = 4;
/** The folder, under the round models' directory, of the momenta kept across a stop. */
export const AUDITED_MOMENTA_DIR = "audited-momenta";
/** Format of a momentum file ({@link OutcomeGateOptions.momentaDir}); another one reads as none. */
const MOMENTUM_FILE_VERSION = 1;
/**
 * Age past which a temporary file of an interrupted momentum write is removed, ms: no write of
 * one model-sized file lasts that long, so a younger one may be a write in progress.
 */
const MOMENTUM_TEMPORARY_MS = 10 * 60_000;
/** Architectures whose genesis CIDs are kept: outcomes name theirs, a few in a network. */
const KEPT_GENESIS_ARCHS = 4;
/**
 * Seeds of the genesis models a coordinator starts from (`seededGptWeights(arch, seed)`): the
 * node's default `training.coordinator.seed`.
 */
export const DEFAULT_GENESIS_SEEDS: readonly number[] = Object.freeze([0]);

/** The validator's memory of gossip items taken once (its fraud proofs share it). */
export interface SeenGossip {
  /** Whether `key` was taken already. */
  has(key: string): boolean;
  /** Mark `key` taken; whether it was new. */
  add(key: string): boolean;
}

/** Options of {@link OutcomeGate}. */
export interface OutcomeGateOptions {
  /** Round models (start weights and deltas to audit; reproduced models are written there). */
  models: RoundModels;
  /** Which outcomes were taken already, shared with the validator's other gossip. */
  seen: SeenGossip;
  /**
   * Seeds of the genesis models coordinators start from; default {@link DEFAULT_GENESIS_SEEDS}.
   * A round from one starts with no momentum, so it is audited whatever its number.
   */
  genesisSeeds?: readonly number[];
  /**
   * Where the momenta of reproduced rounds are kept across a stop (see the module doc; the
   * validator's: `<modelsDir>/audited-momenta`); absent: memory only.
   */
  momentaDir?: string;
  /**
   * The economics this node's ledger runs with (the validator's, defaults merged): a peer's
   * outcome is audited only when its coordinator holds its `falseAccusationPenalty` of stake
   * there, the stake the ledger asks of a peer's accuser.
   */
  economics: EconomicParams;
  /** Clock of the audit budgets and of the bench, ms; default `Date.now`. */
  now?: () => number;
  /** Where one line per refused outcome, refused model and benched coordinator goes. */
  log?: (line: string) => void;
}

/** What the gate counts, in the validator's stats. */
export interface OutcomeGateStats {
  /** Round models served without an audit (earlier rounds not seen here). */
  unverified: string[];
  /** Round models refused: the outer step over their deltas does not give them. */
  refused: { model: string; reason: string }[];
  /**
   * Outcomes refused before any audit (the latest 64): `outcome_unsigned`,
   * `outcome_bad_signature`, `unstaked_coordinator`, `coordinator_benched` (its signed outcome
   * failed an audit here lately), `coordinator_budget`, `peer_budget`. They say nothing about
   * the model they name (`model_standing` does not count them): anyone can send one naming any.
   */
  outcomesRefused: { model: string; coordinator: string | null; reason: string }[];
  /**
   * Reproduced rounds that averaged deltas this node's ledger convicted (the latest 64), by
   * coordinator: the round stands and its other trainers are paid, the convicted receipts earn
   * nothing (`round_audit.ts`, review s73 F6). The coordinator's signed outcome naming them is
   * the evidence against it, whether it knew of the conviction or not: this node cannot tell
   * which, so it refuses nothing its honest trainers made on that account.
   */
  convictedIncluded: { model: string; coordinator: string | null; receipts: string[] }[];
}

/** An audit that failed: the model is refused. */
export type FailedAudit = Extract<RoundAudit, { ok: false }>;
/** An audit that held (reproduced, or not checkable here): the model may be taken. */
export type HeldAudit = Extract<RoundAudit, { ok: true }>;

/** See the module doc. */
export class OutcomeGate {
  readonly #options: OutcomeGateOptions;
  /** Models an outcome audited as holding (or not checkable here): other copies are skipped. */
  readonly #proven = new Set<string>();
  /** Outcome copies audited per model, bounded by {@link MAX_AUDITS_PER_MODEL}. */
  readonly #auditsByModel = new Map<string, number>();
  /** Outcomes audited per relaying peer (hex key) ({@link MAX_AUDITS_PER_PEER}). */
  readonly #peerAudits: AuditBudget;
  /** Outcomes audited per signing coordinator (hex key) ({@link MAX_AUDITS_PER_COORDINATOR}). */
  readonly #coordinatorAudits: AuditBudget;
  /** Coordinators whose signed outcome failed its audit, until when ({@link FALSE_OUTCOME_BENCH_MS}). */
  readonly #benched = new Map<string, number>();
  /** The momentum after each audited round, by the model it produced (the next audit's start). */
  readonly #momentum = new Map<string, GptWeights>();
  /** The H of each round whose momentum is kept, by the model it made (a run keeps one H). */
  readonly #steps = new Map<string, number>();
  /** CIDs of the genesis models, by architecture (computed once per architecture). */
  readonly #genesis = new Map<string, Set<string>>();
  #stats: OutcomeGateStats = {
    unverified: [],
    refused: [],
    outcomesRefused: [],
    convictedIncluded: [],
  };

  /** @param options See {@link OutcomeGateOptions}. */
  constructor(options: OutcomeGateOptions) {
    this.#options = options;
    const now = () => this.#now();
    const window = { windowMs: PEER_AUDIT_WINDOW_MS, now, maxKeys: KEPT_KEYS };
    this.#peerAudits = new AuditBudget({ limit: MAX_AUDITS_PER_PEER, ...window });
    this.#coordinatorAudits = new AuditBudget({ limit: MAX_AUDITS_PER_COORDINATOR, ...window });
  }

  /**
   * Whether an outcome is audited here, taking its audit from its coordinator's and its relay's
   * budgets (and the model's) when it is (see the module doc). A refused one is logged and
   * counted in the stats. Refusals that a later copy cannot undo (a bad signature, the model's
   * copies spent) mark the copy seen; one a pledge, another relay or a new window may undo does
   * not.
   * @param origin The relaying peer's hex key, or `"local"` for this node's own coordinator.
   * @param stakeOf The stake a key holds in this node's ledger; it rejects when a ledger this
   * node has does not answer (stopped, restarting), and so does this call then, before anything
   * is charged or marked seen: "no answer" is not "no stake", and the caller takes the outcome
   * again later (`_outcome_audits.ts`).
   */
  async mayAudit(
    body: OutcomeBody,
    origin: string,
    stakeOf: (key: Uint8Array) => Promise<number>,
  ): Promise<boolean> {
    if (this.#proven.has(body.model)) return false;
    const seen = `outcome:${sha256Hex(encodeCbor(body))}`;
    if (this.#options.seen.has(seen)) return false;
    const signature = outcomeSignature(body);
    if (signature !== "signed") {
      this.#options.seen.add(seen);
      this.#refuseOutcome(body, origin, `outcome_${signature}`);
      return false;
    }
    const coordinator = toHex(body.coordinator!);
    if (origin !== "local") {
      const until = this.#benched.get(coordinator);
      if (until !== undefined && this.#now() < until) {
        this.#refuseOutcome(body, origin, "coordinator_benched");
        return false;
      }
      if (until !== undefined) this.#benched.delete(coordinator);
      const stake = await stakeOf(body.coordinator!);
      if (stake < this.#options.economics.falseAccusationPenalty) {
        this.#refuseOutcome(body, origin, "unstaked_coordinator");
        return false;
      }
      // The ledger was asked: another copy may have come through meanwhile.
      if (this.#options.seen.has(seen) || this.#proven.has(body.model)) return false;
      // Before anything is charged: a copy the per-model bound refuses costs its coordinator
      // and its relay nothing (other keys' copies of that model spent it).
      if (!this.#modelHasAudit(body.model)) {
        this.#options.seen.add(seen);
        return false;
      }
      if (!this.#peerAudits.has(origin)) {
        this.#refuseOutcome(body, origin, "peer_budget");
        return false;
      }
      // Not marked seen: the budget comes back with the window, and a signature says who made
      // an outcome, not when, so anyone may have spent it replaying the coordinator's earlier
      // outcomes; the same outcome relayed (or sent again by its coordinator) later is taken.
      if (!this.#coordinatorAudits.take(coordinator)) {
        this.#refuseOutcome(body, origin, "coordinator_budget");
        return false;
      }
      this.#peerAudits.take(origin);
    }
    this.#options.seen.add(seen);
    return this.#auditBudget(body.model);
  }

  /**
   * Redo the round's outer step (`round_audit.ts`) before its model is taken, from the momentum
   * of the round before it that this gate kept (none from a genesis model): in memory, or on disk
   * from before a stop. A reproduced round's momentum is on disk before this resolves (a failed
   * write is logged: it costs only the next round's audit after a stop).
   * @param convicted Whether this node's ledger convicted a receipt.
   */
  async audit(
    body: OutcomeBody,
    convicted: (receiptId: string) => Promise<boolean>,
  ): Promise<RoundAudit> {
    // Read here, outside the mailbox, and used for this audit only: the gate's memory changes
    // only when an audit held (`auditHeld`, which keeps this round's own momentum).
    const start = body.round > 0 && !this.#momentum.has(body.startModel)
      ? await this.#readMomentum(body.startModel, body.arch)
      : undefined;
    const audit = await auditRound(body, {
      models: this.#options.models,
      momentumAfter: (cid) =>
        this.#momentum.get(cid) ?? (cid === body.startModel ? start?.momentum : undefined),
      stepsAfter: (cid) =>
        this.#steps.get(cid) ?? (cid === body.startModel ? start?.steps : undefined),
      isGenesis: (cid, arch) => this.#genesisModels(arch).has(cid),
      convicted,
    });
    if (audit.ok && audit.verified) {
      await this.#writeMomentum(body, audit.momentum).catch((error) =>
        this.#log(
          `training: the momentum of round ${body.round} model ${body.model.slice(0, 16)}… ` +
            `not kept on disk: ${(error as Error).message}`,
        )
      );
    }
    return audit;
  }

  /**
   * An audited copy of `body` failed: its model is refused, unless another copy proved it, and
   * a peer's signer is benched for a false claim ({@link FALSE_OUTCOME_BENCH_MS}).
   */
  auditFailed(body: OutcomeBody, audit: FailedAudit, origin: string): void {
    const name = `round ${body.round} model ${body.model.slice(0, 16)}…`;
    // Signed by its coordinator (`mayAudit`): a failure is its own claim, not a relay's.
    if (origin !== "local") {
      this.#bench(toHex(body.coordinator!), name, audit.reason);
    }
    if (this.#proven.has(body.model)) {
      this.#log(`training: a copy of ${name} refused (${audit.reason}); the model stands`);
      return;
    }
    this.#stats.refused.push({ model: body.model, reason: audit.reason });
    this.#log(`training: ${name} refused: ${audit.reason} (${audit.detail})`);
  }

  /**
   * An audited copy of `body` held: its model is proven (a refusal of a bad copy before it no
   * longer speaks for it), and a reproduced round's momentum is kept for the next audit.
   * @returns Whether this copy is the first to prove its model (the validator then serves it,
   * passes it on and credits its receipts); false when another copy proved it first.
   */
  auditHeld(body: OutcomeBody, audit: HeldAudit): boolean {
    if (this.#proven.has(body.model)) return false;
    this.#proven.add(body.model);
    if (this.#proven.size > KEPT_KEYS) this.#proven.delete(this.#proven.values().next().value!);
    // A bad copy audited before this one no longer speaks for the model.
    this.#stats.refused = this.#stats.refused.filter((r) => r.model !== body.model);
    if (audit.verified) {
      if (audit.convicted.length > 0) this.#convictedIncluded(body, audit.convicted);
      this.#momentum.set(body.model, audit.momentum);
      this.#steps.set(body.model, body.reports[0].receipt.steps);
      // Rounds move on: the latest few are enough to audit the next.
      while (this.#momentum.size > KEPT_MOMENTA) {
        const oldest = this.#momentum.keys().next().value!;
        this.#momentum.delete(oldest);
        this.#steps.delete(oldest);
      }
    } else {
      this.#stats.unverified.push(body.model);
    }
    return true;
  }

  /** Why round model `model` was refused here, or null (outcomes refused unaudited say nothing). */
  standing(model: string): string | null {
    return this.#stats.refused.find((r) => r.model === model)?.reason ?? null;
  }

  /** A copy of the gate's counts. */
  stats(): OutcomeGateStats {
    return {
      unverified: [...this.#stats.unverified],
      refused: [...this.#stats.refused],
      outcomesRefused: [...this.#stats.outcomesRefused],
      convictedIncluded: [...this.#stats.convictedIncluded],
    };
  }

  /** Record and log a reproduced round that averaged convicted deltas (`convictedIncluded`). */
  #convictedIncluded(body: OutcomeBody, receipts: string[]): void {
    const coordinator = body.coordinator === undefined ? null : toHex(body.coordinator);
    this.#stats.convictedIncluded.push({ model: body.model, coordinator, receipts });
    if (this.#stats.convictedIncluded.length > KEPT_OUTCOME_REFUSALS) {
      this.#stats.convictedIncluded.shift();
    }
    this.#log(
      `training: round ${body.round} model ${body.model.slice(0, 16)}… of coordinator ` +
        `${coordinator?.slice(0, 16) ?? "unsigned"} averaged ${receipts.length} delta(s) ` +
        `convicted here; adopted, those receipts unpaid`,
    );
  }

  /** The CIDs of the genesis models of `arch` (see {@link OutcomeGateOptions.genesisSeeds}). */
  #genesisModels(arch: GptArchitecture): Set<string> {
    const key = JSON.stringify(arch);
    let cids = this.#genesis.get(key);
    if (cids === undefined) {
      const seeds = this.#options.genesisSeeds ?? DEFAULT_GENESIS_SEEDS;
      cids = new Set(seeds.map((seed) => RoundModels.cidOf(arch, seededGptWeights(arch, seed))));
      this.#genesis.set(key, cids);
      if (this.#genesis.size > KEPT_GENESIS_ARCHS) {
        this.#genesis.delete(this.#genesis.keys().next().value!);
      }
    }
    return cids;
  }

  /** Whether another copy of an outcome for `model` may be audited (a few per model). */
  #auditBudget(model: string): boolean {
    const audits = (this.#auditsByModel.get(model) ?? 0) + 1;
    if (audits > MAX_AUDITS_PER_MODEL) return false;
    this.#auditsByModel.set(model, audits);
    if (this.#auditsByModel.size > KEPT_KEYS) {
      this.#auditsByModel.delete(this.#auditsByModel.keys().next().value!);
    }
    return true;
  }

  /** Whether a copy of an outcome for `model` may still be audited (nothing is taken). */
  #modelHasAudit(model: string): boolean {
    return (this.#auditsByModel.get(model) ?? 0) < MAX_AUDITS_PER_MODEL;
  }

  /** Log and count an outcome refused before its audit. */
  #refuseOutcome(body: OutcomeBody, origin: string, reason: string): void {
    const coordinator = body.coordinator === undefined ? null : toHex(body.coordinator);
    this.#stats.outcomesRefused.push({ model: body.model, coordinator, reason });
    if (this.#stats.outcomesRefused.length > KEPT_OUTCOME_REFUSALS) {
      this.#stats.outcomesRefused.shift();
    }
    this.#log(
      `training: outcome of round ${body.round} model ${body.model.slice(0, 16)}… from ` +
        `${origin === "local" ? "this node" : origin.slice(0, 16)} refused (${reason}` +
        `${coordinator === null ? "" : `, coordinator ${coordinator.slice(0, 16)}`}): not audited`,
    );
  }

  /** No outcome of `coordinator` is audited here for {@link FALSE_OUTCOME_BENCH_MS}. */
  #bench(coordinator: string, name: string, reason: string): void {
    this.#benched.delete(coordinator); // re-inserted last: the oldest is forgotten first
    this.#benched.set(coordinator, this.#now() + FALSE_OUTCOME_BENCH_MS);
    if (this.#benched.size > KEPT_KEYS) this.#benched.delete(this.#benched.keys().next().value!);
    this.#log(
      `training: coordinator ${coordinator.slice(0, 16)} signed ${name}, which failed its audit ` +
        `(${reason}): its outcomes are not audited here for ${FALSE_OUTCOME_BENCH_MS / 60_000} min`,
    );
  }

  /**
   * Write the momentum after round `body` (what the next round's audit starts from) to the
   * momenta's folder, and leave only the latest {@link KEPT_MOMENTA} there.
   */
  async #writeMomentum(body: OutcomeBody, momentum: GptWeights): Promise<void> {
    const dir = this.#options.momentaDir;
    if (dir === undefined) return;
    await makeOwnerDir(dir);
    const onnx = gptModelBytesFromWeights(body.arch, momentum);
    const file = {
      v: MOMENTUM_FILE_VERSION,
      steps: body.reports[0].receipt.steps,
      hash: sha256Hex(onnx),
      onnx,
    };
    await writeFileDurably(join(dir, momentumFileName(body.model)), encodeCbor(file));
    // Rounds move on: the latest few are enough to audit the next (by write time, across stops).
    const files: { path: string; at: number }[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(MOMENTUM_SUFFIX)) continue;
      const path = join(dir, entry.name);
      const at = (await Deno.stat(path).catch(() => undefined))?.mtime?.getTime();
      if (at !== undefined) files.push({ path, at });
    }
    files.sort((a, b) => b.at - a.at);
    for (const { path } of files.slice(KEPT_MOMENTA)) await Deno.remove(path).catch(() => {});
    await removeTemporaries(dir, undefined, { olderThanMs: MOMENTUM_TEMPORARY_MS });
  }

  /**
   * The momentum after the round that made `model`, and its H, as a reproduced round's audit
   * wrote them before a stop; undefined when there is none, or it is not whole (logged).
   */
  async #readMomentum(
    model: string,
    arch: OutcomeBody["arch"],
  ): Promise<{ momentum: GptWeights; steps: number } | undefined> {
    const dir = this.#options.momentaDir;
    if (dir === undefined) return undefined;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(join(dir, momentumFileName(model)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      this.#log(`training: the kept momentum of model ${model.slice(0, 16)}… not read: ${error}`);
      return undefined;
    }
    const why = (reason: string) => {
      this.#log(
        `training: the kept momentum of model ${model.slice(0, 16)}… not read: ${reason}`,
      );
      return undefined;
    };
    let file: unknown;
    try {
      file = decodeCbor(bytes);
    } catch {
      return why("not CBOR");
    }
    const { v, steps, hash, onnx } =
      (typeof file === "object" && file !== null ? file : {}) as Record<string, unknown>;
    if (
      v !== MOMENTUM_FILE_VERSION || !Number.isSafeInteger(steps) || typeof hash !== "string" ||
      !(onnx instanceof Uint8Array)
    ) {
      return why("not a momentum file");
    }
    if (sha256Hex(onnx) !== hash) return why("its weights do not match their hash");
    try {
      return { momentum: weightsFromOnnx(onnx, arch), steps: steps as number };
    } catch (error) {
      return why((error as Error).message);
    }
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}

/** How a momentum file's name ends ({@link OutcomeGateOptions.momentaDir}). */
const MOMENTUM_SUFFIX = ".momentum.cbor";

/** The file of the momentum after the round that made `model`: named by its CID. */
function momentumFileName(model: string): string {
  // A CID from an outcome: base32 lower-case letters and digits only (the schema's); anything
  // else is hashed, so no name reaches outside the folder.
  return `${
    /^[a-z0-9]{1,128}$/.test(model) ? model : sha256Hex(new TextEncoder().encode(model))
  }${MOMENTUM_SUFFIX}`;
}
