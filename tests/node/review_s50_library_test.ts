/**
 * Review (stop 50) of Veriflow as a library: what a program that imports only `mod.ts` meets
 * when it starts a node, submits jobs through an inference port and stores files. Each error
 * such a program can be handed — by `startNode`, by a port's `submit` with `resume`, by
 * `FileStore` — is a class `mod.ts` exports, so the program can tell one from another with
 * `instanceof`, as it can `DataDirLockedError` or `ConfigError`; a training architecture the
 * node's rounds cannot run is refused by the configuration, naming its key; and the documented
 * round trip (start a node, stream a job through `client/mod.ts`, check its receipt, store and
 * read a file, stop) leaves nothing open (the test sanitizers are on).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ActorSystem,
  ApiKeysFileError,
  ChallengeMismatchError,
  ChunkStore,
  ConfigError,
  DEFAULT_GENERATION_PARAMS,
  DirectoryTooLargeError,
  ensureBuiltinModel,
  FileStore,
  HttpListenError,
  InferenceActor,
  InvalidResumeError,
  LocalInferencePort,
  ModelRegistry,
  NODE_ACTORS,
  parseNodeConfig,
  PeerListenError,
  RangeTooLargeError,
  ResumeMismatchError,
  startNode,
  type StorageAnswers,
  type StorageMessage,
  type TextJob,
  unwrapReply,
  VeriflowError,
  verifyReceipt,
  WorkerStalledError,
  WorkerTooSlowError,
} from "../../mod.ts";
import { ChallengeMismatchError as ThrownChallengeMismatchError } from "../../training/step_opening.ts";
import { RangeTooLargeError as ThrownRangeTooLargeError } from "../../storage/unixfs.ts";
import { WorkerTooSlowError as ThrownWorkerTooSlowError } from "../../inference/remote_errors.ts";
import { StreamClient } from "../../client/mod.ts";

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
