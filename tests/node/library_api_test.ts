/**
 * Veriflow as a library: what a program that imports only `mod.ts` meets when it starts a node,
 * submits jobs, stores files and closes what it opened with `await using`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as veriflow from "../../mod.ts";
import {
  ActorStoppedError,
  ActorSystem,
  ApiKeysFileError,
  canonicalCid,
  ChallengeMismatchError,
  ChunkStore,
  cidDigest,
  ConfigError,
  DEFAULT_GENERATION_PARAMS,
  DirectoryTooLargeError,
  ensureBuiltinModel,
  FileStore,
  HttpListenError,
  InferenceActor,
  InvalidAccountKeyError,
  InvalidCidError,
  InvalidResumeError,
  LocalInferencePort,
  ModelDisposedError,
  ModelRegistry,
  NODE_ACTORS,
  type NodeConfigInput,
  parseNodeConfig,
  PeerListenError,
  RangeTooLargeError,
  ResumeMismatchError,
  startNode,
  type StorageAnswers,
  type StorageMessage,
  type TextJob,
  TextModel,
  unwrapReply,
  VeriflowError,
  type VeriflowNode,
  verifyReceipt,
  WorkerStalledError,
  WorkerTooSlowError,
} from "../../mod.ts";
import { ChallengeMismatchError as ThrownChallengeMismatchError } from "../../training/step_opening.ts";
import { RangeTooLargeError as ThrownRangeTooLargeError } from "../../storage/unixfs.ts";
import { WorkerTooSlowError as ThrownWorkerTooSlowError } from "../../inference/remote_errors.ts";
import { StreamClient } from "../../client/mod.ts";
import { connectedPair } from "../protocols/_helpers.ts";
import { MIN_SAMPLING_TEMPERATURE } from "../../protocols/job.ts";

// Veriflow as a library: what a program that imports only `mod.ts` meets when it starts a node,
// submits jobs through an inference port and stores files. Each error such a program can be handed
// — by `startNode`, by a port's `submit` with `resume`, by `FileStore` — is a class `mod.ts`
// exports, so the program can tell one from another with `instanceof`, as it can
// `DataDirLockedError` or `ConfigError`; a training architecture the node's rounds cannot run is
// refused by the configuration, naming its key; and the documented round trip (start a node, stream
// a job through `client/mod.ts`, check its receipt, store and read a file, stop) leaves nothing
// open (the test sanitizers are on).
//
// @module

/** A node configuration on free ports with its data under `dir`, `extra` on top. */
function config(dir: string, extra: Record<string, unknown> = {}) {
  return parseNodeConfig({
    dataDir: join(dir, "data"),
    http: { port: 0 },
    network: { listen: { port: 0 } },
    heartbeatMs: 0,
    ...extra,
  });
}

Deno.test("the documented round trip leaves nothing open: start, stream, check the receipt, store, read, stop", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const node = await startNode(config(dir));
    try {
      const client = await StreamClient.connect(node.url!);
      const job = client.infer({ prompt: "The history of", max_tokens: 8 });
      let text = "";
      for await (const token of job.tokens) text += token.text;
      const done = await job.done;
      const check = verifyReceipt(done.receipt, { output: text, worker: node.identity.publicKey });
      assert.equal(check.ok, true, JSON.stringify(check));
      client.close();
      await client.closed;

      const storage = node.system.lookup<StorageMessage>(NODE_ACTORS.storage)!;
      const bytes = new TextEncoder().encode("kept by the node");
      const handle = await storage.ask<StorageAnswers["put"]>({
        type: "put",
        source: ReadableStream.from([bytes]),
      });
      const { cid } = await handle.done;
      const read = unwrapReply<StorageAnswers["get"]>(await storage.ask({ type: "get", cid }));
      assert.deepEqual(new Uint8Array(await new Response(read).arrayBuffer()), bytes);
    } finally {
      await node.shutdown();
    }
    assert.deepEqual(await node.finished, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Review s73 (F4, F6): a handle must not answer as if all were well. After shutdown every other
// handle rejected `actor_stopped`, but `inference.models()` resolved [] ("this node serves no
// model"); and `ledger.account` of bytes that are not a key answered zeros ("this key has no money").

Deno.test("after shutdown node.inference.models() rejects actor_stopped, as submit does, instead of listing no model", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const node = await startNode(config(dir));
    const inference = node.inference!;
    assert.ok((await inference.models()).length > 0, "a running node lists its model");
    await node.shutdown();
    await assert.rejects(() => inference.models(), (e) => {
      assert.ok(e instanceof ActorStoppedError, String(e));
      assert.equal(e.code, "actor_stopped");
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node.ledger.account of a key that is not 32 bytes rejects invalid_account_key, and the validator goes on answering", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const node = await startNode(config(dir));
    try {
      const ledger = node.ledger!;
      for (const key of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(0)]) {
        await assert.rejects(() => ledger.account(key), (e) => {
          assert.ok(e instanceof InvalidAccountKeyError, String(e));
          assert.equal(e.code, "invalid_account_key");
          return true;
        });
      }
      // Refused before it reached the validator: its own key still answers (its pledged stake).
      assert.ok((await ledger.account(node.identity.publicKey)).stake >= 0);
    } finally {
      await node.shutdown();
    }
    assert.deepEqual(await node.finished, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startNode's refusals of a taken port or a missing API keys file are classes mod.ts exports", async () => {
  const dir = await Deno.makeTempDir();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(() => startNode(config(dir, { http: { port } })), (e) => {
      assert.ok(e instanceof HttpListenError, String(e));
      assert.ok(e instanceof VeriflowError);
      assert.equal(e.code, "http_listen_failed");
      return true;
    });
    await assert.rejects(() => startNode(config(dir, { network: { listen: { port } } })), (e) => {
      assert.ok(e instanceof PeerListenError, String(e));
      assert.equal(e.code, "peer_listen_failed");
      return true;
    });
    const apiKeysFile = join(dir, "missing-keys");
    await assert.rejects(() => startNode(config(dir, { http: { port: 0, apiKeysFile } })), (e) => {
      assert.ok(e instanceof ApiKeysFileError, String(e));
      assert.equal(e.code, "invalid_api_keys_file");
      return true;
    });
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a resume the worker cannot honour is refused with InvalidResumeError or ResumeMismatchError from mod.ts", async () => {
  const dir = await Deno.makeTempDir();
  const registry = new ModelRegistry();
  const system = new ActorSystem({ name: "lib" });
  try {
    const { cid } = await registry.register(
      await ensureBuiltinModel(join(dir, "models"), "tiny", 0),
    );
    const inference = await system.spawn({
      name: "lib/inference",
      factory: () => new InferenceActor({ models: registry, concurrency: 1, queueLimit: 4 }),
    });
    const port = new LocalInferencePort({ inference, models: registry });
    const job: TextJob = {
      kind: "text",
      model: cid,
      prompt: "Hello",
      params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 4 },
      nonce: "resume",
    };
    // What greedy decoding gives first; a prefix that differs from it is not this model's.
    const first = await port.submit(job);
    const tokens: number[] = [];
    for await (const token of first.tokens) tokens.push(token.tokenId);
    await first.done;

    await assert.rejects(
      () => port.submit({ ...job, nonce: "too-long" }, { resume: tokens }),
      (e) => {
        assert.ok(e instanceof InvalidResumeError, String(e));
        assert.equal(e.code, "invalid_resume");
        return true;
      },
    );
    const wrong = [(tokens[0] + 1) % 256, ...tokens.slice(1, 2)];
    const refused = await port.submit({ ...job, nonce: "wrong" }, { resume: wrong }).then(
      async (handle) => {
        for await (const _ of handle.tokens) { /* drained: the mismatch ends the stream */ }
        return await handle.done;
      },
    ).catch((e) => e);
    assert.ok(refused instanceof ResumeMismatchError, String(refused));
    assert.equal(refused.code, "resume_mismatch");
  } finally {
    await system.shutdown();
    await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("FileStore.putDirectory's documented DirectoryTooLargeError is the class mod.ts exports", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = new FileStore(await ChunkStore.open(dir));
    const file = await files.put(ReadableStream.from([new TextEncoder().encode("x")]));
    // Names long enough that the links pass the size at which IPFS would shard the directory.
    const entries = Array.from({ length: 300 }, (_, i) => ({
      name: `${String(i).padStart(4, "0")}-${"n".repeat(1_000)}`,
      fileSize: file.size,
      ...file,
    }));
    await assert.rejects(() => files.putDirectory(entries), (e) => {
      assert.ok(e instanceof DirectoryTooLargeError, String(e));
      assert.equal(e.code, "directory_too_large");
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the errors other exported APIs name in their documentation are the classes they throw", () => {
  // RemoteInferencePortOptions.tokenBudgetMs: a worker past the delivery floor.
  assert.equal(WorkerTooSlowError, ThrownWorkerTooSlowError);
  assert.ok(WorkerTooSlowError.prototype instanceof WorkerStalledError);
  // FileStore.get and bytes over a DAG whose range walk is too long (unixfs filePieces).
  assert.equal(RangeTooLargeError, ThrownRangeTooLargeError);
  // openChallengedSteps: a challenge not validly signed, or not for the receipt.
  assert.equal(ChallengeMismatchError, ThrownChallengeMismatchError);
});

Deno.test("a training context shorter than a round's samples is refused by the configuration, naming the key, not by a role crashing at start", () => {
  // A round trains on 65-byte samples (the model reads 64 bytes at once); a node given a
  // shorter context started, and its coordinator crashed in start-up ("sequence 64 > context
  // 32"), failing startNode with an ActorCrashedError that named no setting.
  assert.throws(
    () => parseNodeConfig({ training: { arch: { contextLength: 32 } } }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /training\.arch\.contextLength/);
      assert.match(error.message, /64/);
      return true;
    },
  );
  assert.equal(
    parseNodeConfig({ training: { arch: { contextLength: 64 } } }).training.arch.contextLength,
    64,
  );
});

// Veriflow as a library, second pass: what a program importing only `mod.ts` gets from `await
// using` on what it opens (a node, a model, a registry, a connection): the end of the block,
// however it ends, releases it — measured (the port is free again, the model refuses work, the peer
// sees the connection end), not assumed. And `parseNodeConfig` takes a typed value, so a misspelt
// key is a compile error as well as a run-time "did you mean".
//
// @module

/** The JSDoc text of `name` as `deno doc` gives it (what an editor's hover shows). */
async function docOf(file: string, name: string): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const doc = JSON.parse(new TextDecoder().decode(stdout));
  const symbols: { name: string; declarations: { jsDoc?: { doc?: string } }[] }[] = Object.values(
    doc.nodes as Record<string, { symbols: never[] }>,
  ).flatMap((node) => node.symbols);
  const symbol = symbols.find((s) => s.name === name);
  assert.ok(symbol !== undefined, `${name} is documented in ${file}`);
  return symbol.declarations.map((d) => d.jsDoc?.doc ?? "").join("\n");
}

/** Thrown inside each `await using` block: the block ends by a throw, not by its last line. */
class ScopeFailed extends Error {}

/** Whether `port` on 127.0.0.1 can be bound now (nothing listens on it). */
function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    throw error;
  }
}

Deno.test("a node held with `await using` is shut down when its block throws: its HTTP port is free again and `finished` has resolved", async () => {
  const dir = await Deno.makeTempDir();
  // Every node started, so that the test stops what the block may have leaked (before the fix,
  // `await using` threw a TypeError and left the node running).
  const startedNodes: VeriflowNode[] = [];
  try {
    const config = parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0 },
      network: { listening: false },
      roles: { validator: false, storage: false },
      heartbeatMs: 0,
    });
    let port = 0;
    let finished = false;
    await assert.rejects(async () => {
      await using node = await startNode(config).then((node) => {
        startedNodes.push(node);
        return node;
      });
      port = Number(new URL(node.url!).port);
      node.finished.then(() => (finished = true));
      assert.equal(portIsFree(port), false, "the node listens while the block runs");
      throw new ScopeFailed("the program fails after the node started");
    }, ScopeFailed);
    assert.notEqual(port, 0);
    assert.equal(finished, true, "the node has stopped by the time the block is left");
    assert.equal(portIsFree(port), true, "the node's HTTP port is released");
  } finally {
    for (const node of startedNodes) await node.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a VeriflowNode, a TextModel, a ModelRegistry and a Connection are AsyncDisposable in their types", () => {
  // Compile-time: `deno check` refuses these assignments when the types do not say so.
  const takes = (_: AsyncDisposable) => {};
  const node = null as unknown as VeriflowNode;
  const model = null as unknown as TextModel;
  const registry = null as unknown as ModelRegistry;
  const connection = null as unknown as import("../../mod.ts").Connection;
  if (node !== null) [node, model, registry, connection].forEach(takes);
  // Run-time: the classes carry the method.
  for (const cls of [TextModel, ModelRegistry]) {
    assert.equal(typeof cls.prototype[Symbol.asyncDispose], "function", cls.name);
  }
});

Deno.test("a TextModel held with `await using` is disposed when its block throws: it refuses work afterwards", async () => {
  const dir = await Deno.makeTempDir();
  const loaded: TextModel[] = [];
  try {
    const path = await ensureBuiltinModel(join(dir, "models"), "tiny", 0);
    let held: TextModel | undefined;
    await assert.rejects(async () => {
      await using model = await TextModel.load(path).then((m) => (loaded.push(m), m));
      held = model;
      model.generate(model.tokenizer.encode("Hello"), {
        ...DEFAULT_GENERATION_PARAMS,
        maxTokens: 1,
      })
        .cancel();
      throw new ScopeFailed("the program fails after the model loaded");
    }, ScopeFailed);
    assert.ok(held !== undefined);
    assert.throws(
      () => held!.generate([1], { ...DEFAULT_GENERATION_PARAMS, maxTokens: 1 }),
      ModelDisposedError,
    );
  } finally {
    for (const model of loaded) await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a ModelRegistry held with `await using` closes when its block throws: the models it loaded are disposed and it lists none", async () => {
  const dir = await Deno.makeTempDir();
  const registries: ModelRegistry[] = [];
  try {
    const path = await ensureBuiltinModel(join(dir, "models"), "tiny", 0);
    let registry: ModelRegistry | undefined;
    let model: TextModel | undefined;
    await assert.rejects(async () => {
      await using models = new ModelRegistry();
      registries.push(models);
      registry = models;
      const { cid } = await models.register(path);
      model = await models.getText(cid);
      throw new ScopeFailed("the program fails after the model loaded");
    }, ScopeFailed);
    assert.ok(registry !== undefined && model !== undefined);
    assert.deepEqual(registry.list(), []);
    assert.throws(
      () => model!.generate([1], { ...DEFAULT_GENERATION_PARAMS, maxTokens: 1 }),
      ModelDisposedError,
    );
  } finally {
    for (const registry of registries) await registry.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a Connection held with `await using` closes when its block throws: the peer sees it end", async () => {
  const pair = connectedPair({ keepaliveMs: 0, idleTimeoutMs: 0 }, {
    keepaliveMs: 0,
    idleTimeoutMs: 0,
  });
  try {
    let closed = false;
    await assert.rejects(async () => {
      await using client = pair.client;
      client.closed.then(() => (closed = true));
      throw new ScopeFailed("the program fails while connected");
    }, ScopeFailed);
    assert.equal(closed, true, "the connection is closed by the time the block is left");
    // The peer's side ends because ours did: a real event, not a timer.
    await pair.server.closed;
  } finally {
    await pair.close();
  }
});

Deno.test("parseNodeConfig's parameter is typed (NodeConfigInput): a misspelt key is a type error, and still a ConfigError with a suggestion at run time", () => {
  const typed: NodeConfigInput = { http: { port: 0 }, network: { listening: false } };
  assert.equal(parseNodeConfig(typed).http.port, 0);
  assert.throws(
    // @ts-expect-error `prot` is not a key of `http`: deno check must refuse it.
    () => parseNodeConfig({ http: { prot: 1 } }),
    (error: unknown) =>
      error instanceof ConfigError && /did you mean http\.port\?/.test(error.message),
  );
  // A value read from JSON is `unknown`: it is cast (the schema checks it at run time).
  const fromFile: unknown = JSON.parse('{"htttp": {"port": 0}}');
  assert.throws(
    () => parseNodeConfig(fromFile as NodeConfigInput),
    (error: unknown) => error instanceof ConfigError && /did you mean http\?/.test(error.message),
  );
});

Deno.test("a string that is no CID is refused in the project's words, naming what a CID looks like, with the parser's reason kept as the cause", () => {
  for (const refuse of [() => cidDigest("not-a-cid"), () => canonicalCid("not-a-cid")]) {
    assert.throws(refuse, (error: unknown) => {
      assert.ok(error instanceof InvalidCidError);
      assert.equal(error.code, "invalid_cid");
      assert.doesNotMatch(error.message, /decoder|multibase|base58btc/, error.message);
      assert.match(error.message, /bafkrei…/);
      assert.match(error.message, /not-a-cid/);
      assert.ok(error.cause instanceof Error, "the multiformats parser's error is the cause");
      return true;
    });
  }
});

Deno.test("QueuePosition's own summary says what it is (an editor's hover shows no module doc)", async () => {
  const doc = await docOf("inference/queue_position.ts", "QueuePosition");
  assert.doesNotMatch(doc, /^See the module doc/);
  assert.match(doc.split("\n")[0], /queued job/);
  assert.match(doc, /onQueued/);
});

Deno.test("verifyReceipt's JSDoc says what a check without `job` leaves unproven", async () => {
  const doc = await docOf("protocols/receipt.ts", "verifyReceipt");
  assert.match(doc, /Without `job`/);
  assert.match(doc, /some job/);
  assert.match(doc, /validateReceipt/);
});

// What docs/API.md's sampling table names is importable from `mod.ts`: `MIN_SAMPLING_TEMPERATURE`,
// the temperature below which a job is greedy.

Deno.test("mod.ts exports MIN_SAMPLING_TEMPERATURE, the value the sampler uses", () => {
  assert.equal(
    (veriflow as Record<string, unknown>).MIN_SAMPLING_TEMPERATURE,
    MIN_SAMPLING_TEMPERATURE,
  );
});
