/**
 * Shared fixtures of the server and InferenceActor tests: a scripted model whose every step is
 * counted (and can be held at a gate, so tests decide exactly when tokens are produced), and a
 * whole node (real tiny model + scripted model, ActorSystem, InferenceActor, LocalInferencePort,
 * Hono app, Deno.serve on 127.0.0.1 port 0).
 *
 * @module
 */
import type { JobInputReader } from "../../protocols/job_input.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import {
  type GenerativeModel,
  InferenceActor,
  type InferenceMessage,
  type ModelSource,
  type OneShotModel,
  type ProverHook,
} from "../../actors/inference_actor.ts";
import type {
  InferenceStats,
  ModelCatalog,
  ServedModelInfo,
} from "../../inference/inference_port.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel, type TokenChunk } from "../../inference/text_model.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import { DEFAULT_GENERATION_PARAMS, type GenerationParams } from "../../protocols/job.ts";
import { createApp } from "../../server/app.ts";
import type { ConnectionTimers } from "../../protocols/connection_timers.ts";
import type { EdgeConfig } from "../../server/edge_config.ts";
import { serve } from "../../server/serve.ts";

/** Letters the scripted model cycles through. */
const ALPHABET = "abcdefghijklmnopqrstuvwxyz";
/** Vocabulary of the scripted model: one id per byte. */
const SCRIPTED_VOCAB = 256;

/** Options of {@link ScriptedModel}. */
export interface ScriptedModelOptions {
  /** Model name (and CID suffix). */
  name?: string;
  /** Context length. Default 64. */
  contextLength?: number;
  /** When true, each step waits for {@link ScriptedModel.release}. */
  gated?: boolean;
}

/**
 * A text model that emits `a, b, c, ...` (one byte token per step), counts its steps, and can
 * hold each step at a gate. It honours the generate contract: pull-based, stops on abort or
 * cancel, marks the last chunk with `finishReason`.
 */
export class ScriptedModel implements GenerativeModel {
  readonly info: ServedModelInfo;
  /** Prompts tokenised so far (a prompt refused at the edge never gets here). */
  encoded = 0;
  readonly tokenizer = {
    encode: (text: string): number[] => {
      this.encoded++;
      return [...new TextEncoder().encode(text)];
    },
  };
  /** Steps computed so far (over all jobs). */
  steps = 0;
  #gated: boolean;
  #permits = 0;
  #waiters: (() => void)[] = [];
  #stepWaiters: (() => void)[] = [];

  constructor(options: ScriptedModelOptions = {}) {
    const name = options.name ?? "scripted";
    this.info = {
      cid: `bafkscripted${name}`,
      name,
      kind: "text",
      contextLength: options.contextLength ?? 64,
      executionProvider: "cpu",
    };
    this.#gated = options.gated ?? false;
  }

  /** Let `n` more steps run (gated models). */
  release(n = 1): void {
    this.#permits += n;
    while (this.#permits > 0 && this.#waiters.length > 0) {
      this.#permits--;
      this.#waiters.shift()!();
    }
  }

  /** Resolves once `steps` reaches `n`. */
  async stepsReached(n: number): Promise<void> {
    while (this.steps < n) await new Promise<void>((r) => this.#stepWaiters.push(r));
  }

  /** Steps blocked at the gate now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  generate(
    promptIds: number[],
    params: GenerationParams,
    options?: { signal?: AbortSignal },
  ): ReadableStream<TokenChunk> {
    let index = 0;
    let output = "";
    let stopped = false;
    const room = (this.info.contextLength ?? Infinity) - promptIds.length;
    return new ReadableStream<TokenChunk>({
      pull: async (controller) => {
        options?.signal?.throwIfAborted();
        if (this.#gated) {
          if (this.#permits > 0) this.#permits--;
          else await new Promise<void>((r) => this.#waiters.push(r));
        }
        if (stopped || options?.signal?.aborted) return;
        this.steps++;
        for (const wake of this.#stepWaiters.splice(0)) wake();
        const text = ALPHABET[index % ALPHABET.length];
        output += text;
        // Stop sequences as a real model honours them: after the output ends with one.
        const matched = params.stop.some((stop) => output.endsWith(stop));
        const last = matched || index + 1 >= Math.min(params.maxTokens, room);
        const tokenId = text.charCodeAt(0);
        const logits = new Float32Array(SCRIPTED_VOCAB);
        controller.enqueue({
          index,
          tokenId,
          text,
          // Evidence the way a real model's chunks carry it, so tests can see where it goes.
          fingerprint: fingerprintOf(logits, tokenId),
          vocabSize: SCRIPTED_VOCAB,
          logits,
          finishReason: matched ? "stop" : last ? "length" : undefined,
        });
        index++;
        if (last) controller.close();
      },
      cancel: () => {
        stopped = true;
      },
    }, { highWaterMark: 0 });
  }
}

/** The logprob of every scripted token: its logits row is flat, so log(1/256). */
export const SCRIPTED_LOGPROB: number = fingerprintOf(new Float32Array(SCRIPTED_VOCAB), 0).logProb;

/** The text the scripted model produces for `n` tokens. */
export function scriptedText(n: number): string {
  let text = "";
  for (let i = 0; i < n; i++) text += ALPHABET[i % ALPHABET.length];
  return text;
}

/** A fixed set of models, as both the actor's {@link ModelSource} and the app's catalog. */
export class StaticModels implements ModelSource, ModelCatalog {
  #models: (GenerativeModel | OneShotModel)[];

  constructor(models: (GenerativeModel | OneShotModel)[]) {
    this.#models = models;
  }

  get(cid: string): Promise<GenerativeModel | OneShotModel | undefined> {
    return Promise.resolve(this.#models.find((m) => m.info.cid === cid));
  }

  list(): ServedModelInfo[] {
    return this.#models.map((m) => m.info);
  }
}

/** The tiny built-in model, built once per process into a temp dir. */
let tinyModel: Promise<TextModel> | undefined;

/** Load (building on first use) the tiny built-in model, one intra-op thread. */
export function loadTinyModel(): Promise<TextModel> {
  tinyModel ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-server-test-" });
    await buildGptModel({ size: "tiny", seed: 0, outDir: dir });
    const model = await TextModel.load(dir, { intraOpThreads: 1 });
    // The directory is only read at load time; remove it now so no test leaves it behind.
    await Deno.remove(dir, { recursive: true });
    return model;
  })();
  return tinyModel;
}

/** Generation params: the defaults overridden by `p`. */
export function params(p: Partial<GenerationParams> = {}): GenerationParams {
  return { ...DEFAULT_GENERATION_PARAMS, ...p };
}

/** The text a direct `generate` produces (the reference the APIs must match). */
export async function directText(
  model: TextModel,
  prompt: string,
  p: Partial<GenerationParams>,
): Promise<string> {
  let text = "";
  for await (const chunk of model.generate(model.tokenizer.encode(prompt), params(p))) {
    text += chunk.text;
  }
  return text;
}

/** Options of {@link startTestNode}. */
export interface TestNodeOptions {
  /** Jobs per model at once. Default 4. */
  concurrency?: number;
  /** Queue bound per model. Default 8. */
  queueLimit?: number;
  /** Prover hook. */
  prover?: ProverHook;
  /** The edge's limits and access rules. */
  edge?: Partial<EdgeConfig>;
  /** Where the edge logs job starts, ends and cancels. */
  log?: (line: string) => void;
  /** Reads a job's input by CID (a node's storage); none by default. */
  readInput?: JobInputReader;
  /** The app's clock and timers (its deadlines: body, SSE idle client); default the system's. */
  timers?: ConnectionTimers;
}

/** A running test node. */
export interface TestNode {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** `ws://127.0.0.1:PORT/v1/stream`. */
  wsUrl: string;
  /** The real tiny model (the default model). */
  model: TextModel;
  /** A gated scripted model, named `gated`. */
  gated: ScriptedModel;
  /** The InferenceActor. */
  inference: ActorRef<InferenceMessage>;
  /** The port the app submits through. */
  port: LocalInferencePort;
  /** The actor system. */
  system: ActorSystem;
  /** The app (call `app.fetch` to reach it without a socket). */
  app: ReturnType<typeof createApp>;
  /** The actor's stats. */
  stats(): Promise<InferenceStats>;
  /** Stop the server and the actor system. */
  close(): Promise<void>;
}

/** Start a whole node on 127.0.0.1, port 0. */
export async function startTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const model = await loadTinyModel();
  const gated = new ScriptedModel({ name: "gated", gated: true });
  const models = new StaticModels([model, gated]);
  const system = new ActorSystem({ name: "test-node" });
  const inference = await system.spawn<InferenceMessage>({
    name: "node/inference",
    factory: () =>
      new InferenceActor({
        models,
        concurrency: options.concurrency ?? 4,
        queueLimit: options.queueLimit ?? 8,
        prover: options.prover,
      }),
  });
  const port = new LocalInferencePort({ inference, models, readInput: options.readInput });
  const app = createApp({
    inference: port,
    defaultModel: model.info.cid,
    edge: options.edge,
    log: options.log,
    timers: options.timers,
  });
  const abort = new AbortController();
  const server = serve({ app, port: 0, signal: abort.signal });
  return {
    url: server.url,
    wsUrl: `${server.url.replace("http:", "ws:")}/v1/stream`,
    model,
    gated,
    inference,
    port,
    system,
    app,
    stats: () => port.stats(),
    close: async () => {
      gated.release(1_000_000); // let any held step finish so nothing waits forever
      abort.abort();
      await server.finished;
      await system.shutdown();
    },
  };
}

/** Run `body` against a fresh {@link startTestNode} node, closed after it whatever happens. */
export async function withTestNode(body: (node: TestNode) => Promise<void>): Promise<void> {
  const node = await startTestNode();
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

/** POST `body` as JSON to `node`'s `path`: the status and the parsed answer. */
export async function postJson(
  node: TestNode,
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

export { eventually } from "../_helpers/wait.ts";
