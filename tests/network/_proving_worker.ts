/**
 * Test fixture: a worker that a forwarding node (a `NetworkInferencePort`) sends its client's job
 * to — the worker's inference port, which runs each job on the honest model and proves it, and
 * the in-memory connection router → worker that the worker serves as a node serves its peers
 * (`servePeer`) — and the forwarding node's side: a stand-in for its NetworkActor that knows one
 * worker, and the router's real ledger. For the tests of a forwarded job's receipt (`lost_end_test.ts`,
 * `validator_inbox_test.ts`).
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { servePeer } from "../../network/peer_services.ts";
import { bytesEqual } from "../../protocols/bytes_equal.ts";
import { Connection } from "../../protocols/connection.ts";
import type { Identity } from "../../protocols/identity.ts";
import { INFERENCE_PROTOCOL } from "../../protocols/inference_messages.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import type { Receipt } from "../../protocols/receipt.ts";
import { proveJob } from "../../proof/prover.ts";
import { manualStream } from "../proof/_models.ts";
import {
  f,
  HONEST_MODELS,
  type LedgerClock,
  spawnValidator,
} from "../actors/_validator_fixture.ts";

/** The honest model, as a worker serves it. */
export const HONEST_INFO: ServedModelInfo = {
  cid: f.honest.info.cid,
  name: "honest",
  kind: "text",
};

/**
 * A job of the forwarding node's client on the honest model, `maxTokens` tokens (four unless
 * given), with `nonce`; it names no requester (the forwarding port signs the assignment as the
 * requester).
 */
export function clientJob(nonce: string, maxTokens = 4): TextJob {
  return {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "Settle this",
    params: { maxTokens, temperature: 0.7, topK: 0, topP: 1, seed: 4, stop: [] },
    nonce,
  };
}

/** How a {@link ProvingWorkerPort} ends its jobs. */
export interface ProvingWorkerOptions {
  /** The job is proved under the worker's key and its receipt comes with `done` (default true). */
  prove?: boolean;
  /**
   * The tokens are pulled one at a time and `done` waits for {@link ProvingWorkerPort.release}
   * (default false: the tokens are all there and `done` resolves at once).
   */
  held?: boolean;
  /** The text streamed at position 0 differs from what was proved (default false). */
  altered?: boolean;
}

/**
 * A worker's inference port: each job streams the honest model's tokens for its prompt; with
 * `prove`, the job is proved under `identity` and the receipt kept in {@link receipt}.
 */
export class ProvingWorkerPort implements InferencePort {
  /** What a `held` job's `done` waits for; a test may put a new one in before the next job. */
  release = Promise.withResolvers<void>();
  /** The last job's receipt (none when not proving). */
  receipt?: Receipt;
  /** The last job. */
  job?: TextJob;
  readonly #prove: boolean;
  readonly #held: boolean;
  readonly #altered: boolean;
  constructor(readonly identity: Identity, options: ProvingWorkerOptions = {}) {
    this.#prove = options.prove ?? true;
    this.#held = options.held ?? false;
    this.#altered = options.altered ?? false;
  }
  models(): Promise<ServedModelInfo[]> {
    return Promise.resolve([HONEST_INFO]);
  }
  stats(): ReturnType<InferencePort["stats"]> {
    return Promise.resolve(emptyInferenceStats());
  }
  async submit(job: TextJob): Promise<InferenceHandle> {
    const ids = f.honest.tokenizer.encode(job.prompt);
    const chunks = await Array.fromAsync(manualStream(() => f.honest, ids, job.params));
    const receipt = this.#prove
      ? (await proveJob(job, ReadableStream.from(chunks), this.identity)).receipt
      : undefined;
    this.receipt = receipt;
    this.job = job;
    const eos = f.honest.info.eosTokenId;
    const tokens: StreamedToken[] = chunks.map((c, i) => ({
      index: c.index,
      tokenId: c.tokenId,
      text: this.#altered && i === 0 ? `${c.text}!` : c.text,
      ...(i === chunks.length - 1
        ? { finishReason: c.tokenId === eos ? "stop" as const : "length" as const }
        : {}),
    }));
    const summary: JobSummary = {
      jobId: jobId(job),
      finishReason: tokens.at(-1)!.finishReason!,
      usage: { promptTokens: ids.length, completionTokens: tokens.length },
      timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      receipt,
    };
    const handle = { jobId: jobId(job), model: HONEST_INFO, promptTokens: ids.length };
    if (!this.#held) {
      return {
        ...handle,
        tokens: ReadableStream.from(tokens),
        done: Promise.resolve(summary),
        cancel: () => {},
      };
    }
    let i = 0;
    const release = this.release.promise;
    return {
      ...handle,
      tokens: new ReadableStream<StreamedToken>({
        pull: (c) => {
          c.enqueue(tokens[i++]);
          if (i === tokens.length) c.close();
        },
      }, { highWaterMark: 0 }),
      done: release.then(() => summary),
      cancel: () => {},
    };
  }
}

/**
 * Open an in-memory connection `router` → `worker`, the worker serving it with `port` in
 * `workerSystem` as a node serves its peers. Returns both ends; closing them is the caller's.
 */
export async function connectWorker(
  router: Identity,
  worker: Identity,
  port: InferencePort,
  workerSystem: ActorSystem,
): Promise<{ toWorker: Connection; atWorker: Connection }> {
  const [a, b] = memoryDuplexPair();
  const protocols = [INFERENCE_PROTOCOL];
  const [toWorker, atWorker] = await Promise.all([
    Connection.open(a, { identity: router, protocols }),
    Connection.open(b, { identity: worker, protocols }),
  ]);
  servePeer(atWorker, router.publicKey, { system: workerSystem, inference: port });
  return { toWorker, atWorker };
}

/**
 * A forwarding node's NetworkActor stand-in for a `NetworkInferencePort`: the worker's open
 * connection (set by the test), for jobs and by key; the models it serves; and the workers the
 * port kept off the model (a receipt that failed its check) in {@link avoided}.
 */
export class OneWorker implements Actor<NetworkMessage> {
  /** The connection to the worker (to whoever the test connected). */
  connection?: Connection;
  /** Workers kept off the model (`worker_refused_model`), hex keys. */
  readonly avoided: string[] = [];
  receive(message: NetworkMessage): unknown {
    if (message.type === "worker_refused_model") this.avoided.push(message.key);
    const open = this.connection?.isClosed === false ? this.connection : undefined;
    switch (message.type) {
      case "worker":
        return open;
      case "connection_to":
        return open && bytesEqual(open.peerKey!, message.key) ? open : undefined;
      case "worker_models":
        return [HONEST_INFO];
    }
    return undefined; // announce_receipt: nothing to do here
  }
}

/**
 * The forwarding node ("router", key `router`) in `system`: `network` (a stand-in for its
 * NetworkActor) spawned as `router/network`, and its ValidatorActor `router/validator`, a real
 * ledger under `dir/router` on `clock` that challenges nothing, on the honest models.
 */
export async function spawnRouter(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  router: Identity,
  network: Actor<NetworkMessage>,
): Promise<{ networkRef: ActorRef<NetworkMessage>; validator: ActorRef<ValidatorMessage> }> {
  const networkRef = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => network,
  });
  const validator = await spawnValidator(system, {
    name: "router/validator",
    identity: router,
    ledgerDir: `${dir}/router`,
    clock,
    challengeProbability: 0, // nothing here is about a challenge
    network: "router/network",
    models: HONEST_MODELS,
  });
  return { networkRef, validator };
}
