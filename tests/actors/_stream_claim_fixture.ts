/**
 * Test fixture of the stream claims in the validator (`actors/_stream_claims.ts`): a validator in a
 * system of its own whose network records what it is told, a lost worker's claim signed as it
 * streamed, and the sampled job and tokens they are about.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { StreamClaimHandled, ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type StreamClaim, StreamSigner } from "../../protocols/stream_commitment.ts";
import type { StreamCheckResult } from "../../proof/stream_check.ts";
import { honestTokens, leastLikely, sampledJob, STREAM_PROMPT } from "../proof/_stream_fixtures.ts";
import { paidFor } from "../proof/_receipt_pay.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { f, HONEST_MODELS, ledgerReads, spawnValidator, START } from "./_validator_fixture.ts";
import type { ValidatorModelSource } from "../../actors/validator_messages.ts";
import type { JobInputReader } from "../../protocols/job_input.ts";

/** What each key deposits. */
export const STAKE = 1_000_000;
/** Tokens the lost worker streamed. */
export const TOKENS = 12;
/** Where a lying worker's stream goes wrong. */
export const WRONG_AT = 5;

/** This node's identity. */
export const me = Identity.generate();

/** A sampled job on the honest model; `requester`: the key it names as its requester. */
export const job = (nonce: string, requester?: Identity): TextJob => {
  const j = sampledJob(f.honest, nonce);
  return requester === undefined ? j : { ...j, requester: toHex(requester.publicKey) };
};

/**
 * What a confirmed claim over `tokens` of a job whose model reads `promptText` (default the
 * sampled jobs' prompt) cuts from the worker's stake: the lock of the receipt the stream would
 * have been, `slashMultiplier ×` its reward, prompt tokens included (review s78 vprompt F5).
 */
export function streamCut(tokens: number, promptText: string = STREAM_PROMPT): number {
  const promptTokens = f.honest.tokenizer.encode(promptText).length;
  return DEFAULT_ECONOMICS.slashMultiplier * paidFor({ tokenCount: tokens, promptTokens });
}

/** The first {@link TOKENS} token ids the honest model streams for `j`. */
export const honestIds = (j: TextJob) => honestTokens(f.honest, j, TOKENS);

/** The byte the job's rule gives the least probability after `prefix`. */
export const leastLikelyAfter = async (j: TextJob, prefix: number[]) =>
  (await leastLikely(f.honest, j, prefix)).token;

/**
 * A lying worker's stream of job `nonce` (naming `requester`): the honest tokens but the least
 * likely one at {@link WRONG_AT}.
 */
export async function lyingStream(
  nonce: string,
  requester?: Identity,
): Promise<{ j: TextJob; ids: number[] }> {
  const j = job(nonce, requester);
  const ids = await honestIds(j);
  ids[WRONG_AT] = await leastLikelyAfter(j, ids.slice(0, WRONG_AT));
  return { j, ids };
}

/** `worker`'s claim over `ids` of `j`, signed in events of 4 tokens as it streamed them. */
export function claimOf(j: TextJob, worker: Identity, ids: number[], at: number): StreamClaim {
  const signer = new StreamSigner(worker, jobId(j));
  let sig = new Uint8Array();
  for (let i = 0; i < ids.length; i += 4) sig = new Uint8Array(signer.sign(ids.slice(i, i + 4)));
  return { job: j, worker: worker.publicKey, tokenIds: ids, sig, at };
}

/** The name the validator tells its network by. */
const NETWORK = "test/network";

/**
 * This node's validator on the ledger in `dir`, reading `clock`, holding `models` (and reading
 * jobs' stored inputs with `readInput`), in a system of its own with a network that records what
 * it is told.
 */
export async function startValidator(
  dir: string,
  clock: { t: number },
  models: ValidatorModelSource = HONEST_MODELS,
  readInput?: JobInputReader,
) {
  const system = new ActorSystem({ name: "stream-claims" });
  const told: NetworkMessage[] = [];
  await system.spawn<NetworkMessage>({ name: NETWORK, factory: () => new RecordingNetwork(told) });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models,
    network: NETWORK,
    readInput,
  });
  const ledger = ledgerReads(() => validator, clock);
  const deposit = (key: Uint8Array) => validator.ask({ type: "deposit", key, amount: STAKE });
  /** Whom the validator told the network to route around. */
  const routedAround = () => told.flatMap((m) => m.type === "peer_convicted" ? [m.key] : []);
  /** The receipts the validator passed on to other ledgers. */
  const announced = () =>
    told.flatMap((m) => m.type === "announce_receipt" ? [toHex(m.receipt.worker)] : []);
  return { system, validator, ledger, deposit, routedAround, announced, told };
}

/** {@link startValidator} on a fresh directory, with `close` to stop it and remove it. */
export async function setUp(models?: ValidatorModelSource, readInput?: JobInputReader) {
  const dir = await Deno.makeTempDir();
  const started = await startValidator(dir, { t: START }, models, readInput);
  const close = async () => {
    await started.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return { ...started, close };
}

/** Hand `claim` to `validator` and wait for its check (undefined: not taken). */
export async function claimed(
  validator: ActorRef<ValidatorMessage>,
  claim: unknown,
): Promise<{ handled: StreamClaimHandled; check?: StreamCheckResult }> {
  const handled = await validator.ask<StreamClaimHandled>({ type: "stream_claim", claim });
  return { handled, check: await handled.result };
}
