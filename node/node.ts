/**
 * The Veriflow node: builds the supervision tree from the configuration and serves the client
 * APIs. This is the one place that knows how the node's actors are wired to each other:
 *
 * ```
 * node                  (system: root supervisor, one_for_one)
 * └── node/sup          NodeSupervisor, one_for_one, backoff
 *     ├── node/storage     StorageActor   — chunk store under <dataDir>/store
 *     ├── node/prover      ProverActor    — follows each job's tee'd token stream, signs receipts
 *     ├── node/validator   ValidatorActor — samples receipts, challenges, ledger
 *     └── node/inference   InferenceActor — job queue, one child per running job
 * ```
 *
 * The inference → prover → validator path: the InferenceActor tees every text job's token
 * stream to the prover hook; the signed receipt goes back to the requester (WebSocket `done`,
 * final SSE event) and is handed to the local validator, which decides with its own unpredictable
 * coin whether to challenge it. Children start in that order so they stop in the reverse one:
 * inference first (no new work), storage last (nothing is lost mid-write).
 *
 * @module
 */
import { join } from "node:path";
import { ActorSystem, formatTree } from "../actors/actor_system.ts";
import type { ActorRef } from "../actors/actor_ref.ts";
import type { ChildSpec } from "../actors/actor.ts";
import { formatEvent } from "../actors/events.ts";
import {
  InferenceActor,
  type InferenceMessage,
  type InferenceStats,
} from "../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../actors/prover_actor.ts";
import { StorageActor, type StorageMessage } from "../actors/storage_actor.ts";
import {
  type Account,
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
} from "../actors/validator_actor.ts";
import { ensureBuiltinModel } from "../inference/builtin_model.ts";
import { LocalInferencePort } from "../inference/local_port.ts";
import { ModelRegistry } from "../inference/model_registry.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import type { Identity } from "../protocols/identity.ts";
import type { TextJob } from "../protocols/job.ts";
import { type Receipt, receiptId } from "../protocols/receipt.ts";
import { toHex } from "../protocols/hash.ts";
import type { ProofData } from "../proof/commitment.ts";
import { createApp } from "../server/app.ts";
import { serve } from "../server/serve.ts";
import { MetricsRegistry } from "../server/metrics_registry.ts";
import { nodeCollector, ValidatorTally } from "./node_metrics.ts";
import type { NodeConfig } from "./config.ts";
import { loadOrCreateIdentity } from "./node_identity.ts";
import { RecentJobs } from "./recent_jobs.ts";

/** Names of the node's actors in the registry. */
export const NODE_ACTORS = {
  supervisor: "node/sup",
  storage: "node/storage",
  prover: "node/prover",
  validator: "node/validator",
  inference: "node/inference",
} as const;

/**
 * NodeSupervisor restart intensity: 5 restarts in 30 s. A role that crashes in a loop (a bad
 * model file, a full disk) escalates within seconds and the node stops with the reason
 * instead of spinning; an isolated crash is absorbed.
 */
const NODE_MAX_RESTARTS = 5;
const NODE_RESTART_WINDOW_MS = 30_000;
/** First restart delay, doubling: gives a failing dependency (disk, device) time to recover. */
const NODE_BACKOFF_INITIAL_MS = 100;
/** Jobs remembered so the local validator can fetch a challenged receipt's job. */
const RECENT_JOBS = 4096;

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  /** Where progress and event lines go; default none (silent). */
  log?: (line: string) => void;
}

/** A running node. */
export interface VeriflowNode {
  /** The node's ed25519 identity (signs receipts, verdicts, ledger entries). */
  readonly identity: Identity;
  /** The actor system holding the supervision tree. */
  readonly system: ActorSystem;
  /** The served models. */
  readonly models: ModelRegistry;
  /** Base URL of the HTTP API (`ws:` + same host for `/v1/stream`); absent without inference. */
  readonly url?: string;
  /** The supervision tree as text. */
  tree(): string;
  /** Stop serving, stop every actor in reverse start order, release models. Idempotent. */
  shutdown(): Promise<void>;
  /** Resolves once the node has fully stopped (by `shutdown` or a fatal escalation). */
  readonly finished: Promise<void>;
}

/**
 * Start a node.
 *
 * @example
 * ```ts ignore
 * const node = await startNode(parseNodeConfig({ http: { port: 0 } }), { log: console.log });
 * console.log(node.url);
 * await node.shutdown();
 * ```
 */
export async function startNode(
  config: NodeConfig,
  options: StartNodeOptions = {},
): Promise<VeriflowNode> {
  const log = options.log ?? (() => {});
  await Deno.mkdir(config.dataDir, { recursive: true });
  const identity = await loadOrCreateIdentity(config.dataDir);
  log(`veriflow node ${toHex(identity.publicKey)}`);
  log(`data directory ${config.dataDir}`);

  const models = new ModelRegistry({
    executionProvider: config.model.executionProvider,
    ...(config.model.workers > 0 ? { worker: true, workerCount: config.model.workers } : {}),
  });
  if (config.roles.inference || config.roles.validator) {
    const started = performance.now();
    const dir = config.model.dir ??
      await ensureBuiltinModel(
        join(config.dataDir, "models"),
        config.model.size,
        config.model.seed,
      );
    const model = await models.register(dir);
    // Load the session now: a lazy load would land on the first request's time to first token.
    await models.get(model.cid);
    log(
      `model ${model.cid} (${model.kind}, ${
        config.model.dir ? dir : `built-in ${config.model.size}`
      }) ` +
        `ready in ${Math.round(performance.now() - started)} ms`,
    );
  }

  const system = new ActorSystem({ name: "node" });
  system.events.subscribe((event) => {
    // Per-job children start and stop all the time; their crashes still show.
    if (event.name.startsWith(`${NODE_ACTORS.inference}/`) && event.type !== "crashed") return;
    log(formatEvent(event));
  });

  const recentJobs = new RecentJobs(RECENT_JOBS);
  const tally = new ValidatorTally();
  const lookup = <M>(name: string): ActorRef<M> | undefined => system.lookup<M>(name);
  const children: ChildSpec<never>[] = [];
  const add = <M>(spec: ChildSpec<M>) => children.push(spec as unknown as ChildSpec<never>);

  if (config.roles.storage) {
    add<StorageMessage>({
      name: NODE_ACTORS.storage,
      factory: () =>
        new StorageActor({
          dir: join(config.dataDir, "store"),
          identity,
          onVerdict: async (verdict) => {
            await lookup<ValidatorMessage>(NODE_ACTORS.validator)?.tell({
              type: "verdict",
              verdict,
            });
          },
        }),
    });
  }
  if (config.roles.prover) {
    add<ProverMessage>({
      name: NODE_ACTORS.prover,
      factory: () => new ProverActor({ identity, dir: join(config.dataDir, "proofs") }),
    });
  }
  if (config.roles.validator) {
    add<ValidatorMessage>({
      name: NODE_ACTORS.validator,
      factory: () =>
        new ValidatorActor({
          identity,
          ledgerDir: join(config.dataDir, "ledger"),
          models: { get: async (cid) => models.has(cid) ? await models.get(cid) : undefined },
          source: {
            job: (receipt: Receipt) => Promise.resolve(recentJobs.get(receipt.jobId)),
            proof: async (receipt: Receipt) => {
              const prover = lookup<ProverMessage>(NODE_ACTORS.prover);
              return prover === undefined ? undefined : await prover.ask<ProofData | undefined>({
                type: "get_proof",
                receiptId: receiptId(receipt),
              });
            },
          },
        }),
    });
  }
  if (config.roles.inference) {
    const prover = config.roles.prover
      ? async (job: TextJob, jobId: string, chunks: ReadableStream<TokenChunk>) => {
        const ref = lookup<ProverMessage>(NODE_ACTORS.prover);
        if (ref === undefined) {
          await chunks.cancel();
          return undefined;
        }
        recentJobs.set(jobId, job);
        const receipt = await proverHook(ref)(job, jobId, chunks);
        // The validator samples with its own coin; the requester is not kept waiting for it.
        void submitToValidator(receipt);
        return receipt;
      }
      : undefined;
    const submitToValidator = async (receipt: Receipt): Promise<void> => {
      const validator = lookup<ValidatorMessage>(NODE_ACTORS.validator);
      if (validator === undefined) return;
      const short = receipt.jobId.slice(0, 12);
      try {
        tally.received++;
        const handled = await validator.ask<ReceiptHandled>({ type: "receipt", receipt });
        if (!handled.recorded) {
          tally.refused++;
          log(`validator: receipt of job ${short} refused (${handled.refusal})`);
        }
        if (!handled.challenged || handled.result === undefined) return;
        tally.challenged++;
        const { verdict, stats } = await handled.result;
        tally.verdicts[verdict.outcome]++;
        log(
          `validator: challenged job ${short} (draw ${
            handled.draw.toFixed(3)
          }) → ${verdict.outcome}` +
            ` (${verdict.reason}; ${stats.positions} positions re-checked in ${
              Math.round(stats.totalMs)
            } ms)`,
        );
      } catch (error) {
        log(`validator: receipt of job ${short} not validated: ${(error as Error).message}`);
      }
    };
    add<InferenceMessage>({
      name: NODE_ACTORS.inference,
      factory: () =>
        new InferenceActor({
          models,
          concurrency: config.inference.concurrency,
          queueLimit: config.inference.queueLimit,
          prover,
        }),
    });
  }

  await system.supervise({
    name: NODE_ACTORS.supervisor,
    strategy: "one_for_one",
    maxRestarts: NODE_MAX_RESTARTS,
    withinMs: NODE_RESTART_WINDOW_MS,
    backoff: { initialMs: NODE_BACKOFF_INITIAL_MS },
    children,
  });

  const validator = lookup<ValidatorMessage>(NODE_ACTORS.validator);
  if (validator !== undefined && config.selfStake > 0) {
    const account = await validator.ask<Account>({ type: "account", key: identity.publicKey });
    if (account.stake === 0) {
      await validator.ask({ type: "deposit", key: identity.publicKey, amount: config.selfStake });
      log(`ledger: recorded a stake of ${config.selfStake} for this node's key (first start)`);
    }
  }

  let server: ReturnType<typeof serve> | undefined;
  const inference = lookup<InferenceMessage>(NODE_ACTORS.inference);
  if (inference !== undefined) {
    const metrics = new MetricsRegistry();
    metrics.register(nodeCollector({
      publicKey: identity.publicKey,
      prover: () => lookup<ProverMessage>(NODE_ACTORS.prover),
      validator: () => lookup<ValidatorMessage>(NODE_ACTORS.validator),
      tally,
    }));
    const app = createApp({
      inference: new LocalInferencePort({ inference, models }),
      metrics,
    });
    server = serve({ app, port: config.http.port, hostname: config.http.hostname });
  }

  const tree = () => formatTree(system.tree());
  log(`\nsupervision tree:\n${tree()}\n`);
  if (server !== undefined) {
    const ws = server.url.replace(/^http/, "ws");
    log(`HTTP API        ${server.url}`);
    log(`  completions   ${server.url}/v1/completions   (OpenAI-compatible, stream: true → SSE)`);
    log(`  chat          ${server.url}/v1/chat/completions`);
    log(`  models        ${server.url}/v1/models`);
    log(`  health        ${server.url}/healthz`);
    log(`  metrics       ${server.url}/metrics`);
    log(`WebSocket API   ${ws}/v1/stream`);
    log(`try: deno run -A cli.ts infer --url ${ws} "Once upon a time"`);
  }

  const heartbeat = config.heartbeatMs > 0
    ? setInterval(() => void beat(), config.heartbeatMs)
    : undefined;
  const startedAt = performance.now();
  async function beat(): Promise<void> {
    const parts = [`heartbeat up ${Math.round((performance.now() - startedAt) / 1000)}s`];
    const rss = Deno.memoryUsage().rss;
    parts.push(`rss ${(rss / 2 ** 20).toFixed(0)} MiB`);
    if (inference !== undefined) {
      try {
        const s = await inference.ask<InferenceStats>({ type: "stats" }, { timeoutMs: 1000 });
        parts.push(
          `jobs ${s.activeJobs} running ${s.queuedJobs} queued ${s.jobsFinished} done`,
          `tokens ${s.tokensGenerated}`,
        );
      } catch (error) {
        parts.push(`inference: ${(error as Error).message}`);
      }
    }
    if (validator !== undefined) {
      parts.push(
        `receipts ${tally.received} challenged ${tally.challenged} fraud ${tally.verdicts.fraud}`,
      );
      try {
        const a = await validator.ask<Account>({ type: "account", key: identity.publicKey }, {
          timeoutMs: 1000,
        });
        parts.push(`credit ${a.balance} stake ${a.stake} (locked ${a.locked})`);
      } catch (error) {
        parts.push(`ledger: ${(error as Error).message}`);
      }
    }
    log(parts.join(" · "));
  }

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      if (heartbeat !== undefined) clearInterval(heartbeat);
      await server?.shutdown();
      await system.shutdown();
      await models.close();
    })();
    return stopping;
  };
  const finished = system.terminated.then(async (termination) => {
    if (termination.reason === "fatal") {
      log(`fatal: the node supervisor gave up: ${String(termination.error)}`);
    }
    await shutdown();
  });

  return { identity, system, models, url: server?.url, tree, shutdown, finished };
}
