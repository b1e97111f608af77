/**
 * Review (stop 61) of Veriflow as a library, second pass: what a program importing only
 * `mod.ts` gets from `await using` on what it opens (a node, a model, a registry, a
 * connection): the end of the block, however it ends, releases it — measured (the port is free
 * again, the model refuses work, the peer sees the connection end), not assumed. And
 * `parseNodeConfig` takes a typed value, so a misspelt key is a compile error as well as a
 * run-time "did you mean".
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  canonicalCid,
  cidDigest,
  ConfigError,
  DEFAULT_GENERATION_PARAMS,
  ensureBuiltinModel,
  InvalidCidError,
  ModelDisposedError,
  ModelRegistry,
  type NodeConfigInput,
  parseNodeConfig,
  startNode,
  TextModel,
  type VeriflowNode,
} from "../../mod.ts";
import { connectedPair } from "../protocols/_helpers.ts";

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

Deno.test("review s61: a node held with `await using` is shut down when its block throws: its HTTP port is free again and `finished` has resolved", async () => {
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

Deno.test("review s61: a VeriflowNode, a TextModel, a ModelRegistry and a Connection are AsyncDisposable in their types", () => {
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

Deno.test("review s61: a TextModel held with `await using` is disposed when its block throws: it refuses work afterwards", async () => {
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

Deno.test("review s61: a ModelRegistry held with `await using` closes when its block throws: the models it loaded are disposed and it lists none", async () => {
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

Deno.test("review s61: a Connection held with `await using` closes when its block throws: the peer sees it end", async () => {
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

Deno.test("review s61: parseNodeConfig's parameter is typed (NodeConfigInput): a misspelt key is a type error, and still a ConfigError with a suggestion at run time", () => {
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

Deno.test("review s61: a string that is no CID is refused in the project's words, naming what a CID looks like, with the parser's reason kept as the cause", () => {
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

Deno.test("review s61: QueuePosition's own summary says what it is (an editor's hover shows no module doc)", async () => {
  const doc = await docOf("inference/queue_position.ts", "QueuePosition");
  assert.doesNotMatch(doc, /^See the module doc/);
  assert.match(doc.split("\n")[0], /queued job/);
  assert.match(doc, /onQueued/);
});

Deno.test("review s61: verifyReceipt's JSDoc says what a check without `job` leaves unproven", async () => {
  const doc = await docOf("protocols/receipt.ts", "verifyReceipt");
  assert.match(doc, /Without `job`/);
  assert.match(doc, /some job/);
  assert.match(doc, /validateReceipt/);
});
