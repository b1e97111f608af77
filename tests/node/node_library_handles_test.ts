/**
 * The handles a running node gives a program that embeds it: `node.inference`, the node's own
 * inference port (the one its HTTP edge serves, which reads a job's stored input from this node's
 * storage), and `node.storage`, its storage as a typed port (bytes in, bytes out: no actor reply
 * to unwrap); and `node.ledger`, its ledger read through its validator (a receipt's record, the
 * verdicts about it, a key's balances).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";

/** Run `job` through `port` to its end: the text and the summary. */
async function run(port: InferencePort, job: TextJob) {
  const handle = await port.submit(job);
  let text = "";
  for await (const token of handle.tokens) text += token.text;
  return { text, summary: await handle.done };
}

Deno.test("node.storage stores a file, node.inference runs a job naming it as input as the node's edge does, node.ledger holds its receipt", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-handles-" });
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: join(dir, "model") });
    const models = new ModelRegistry({ intraOpThreads: 1 });
    const { cid: model } = await models.register(join(dir, "model"));
    const config = parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0, hostname: "127.0.0.1" },
      network: { listen: { port: 0, hostname: "127.0.0.1" } },
      dashboard: { enabled: false },
      heartbeatMs: 0,
    });
    await using node = await startNode(config, { models });
    assert.ok(node.storage, "a node with the storage role has a storage handle");
    assert.ok(node.inference, "a node with the inference role has an inference port");

    const stored = "Field notes, day three: the heron came back to the pond. ";
    const bytes = new TextEncoder().encode(stored);
    const { cid } = await node.storage.put(ReadableStream.from([bytes]), { name: "notes.txt" });
    // Typed: the bytes come back as bytes, not an actor's `{ ok, value }` reply.
    const read = await node.storage.read(cid, { start: 0, end: bytes.length });
    assert.equal(await new Response(read).text(), stored);

    const params = { maxTokens: 8, temperature: 0.8, topK: 0, topP: 1, seed: 5, stop: [] };
    const withInput = await run(node.inference, {
      kind: "text",
      model,
      prompt: "Day four: ",
      input: cid,
      params,
      nonce: "handles-input",
    });
    assert.equal(withInput.summary.error, undefined, JSON.stringify(withInput.summary.error));
    assert.ok(["stop", "length"].includes(withInput.summary.finishReason));
    assert.ok(withInput.summary.receipt, "the job is signed as any other");
    // The model read the stored text before the prompt: the same text as with it inlined.
    const inline = await run(node.inference, {
      kind: "text",
      model,
      prompt: stored + "Day four: ",
      params,
      nonce: "handles-inline",
    });
    assert.equal(withInput.text, inline.text);

    // The receipt is this node's, recorded by its validator before the job's end was returned.
    assert.ok(node.ledger, "a node with the validator role has a ledger handle");
    const check = verifyReceipt(withInput.summary.receipt, {
      output: withInput.text,
      worker: node.identity.publicKey,
    });
    assert.ok(check.ok, JSON.stringify(check));
    const record = await node.ledger.receipt(check.receiptId);
    assert.equal(record?.worker, toHex(node.identity.publicKey));
    assert.equal(record?.status, "pending");
    // A validator never challenges its own key's receipts: no verdict about it here.
    assert.deepEqual(await node.ledger.verdicts(check.receiptId), []);
    assert.equal(typeof (await node.ledger.account(node.identity.publicKey)).stake, "number");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node without the storage and validator roles has no storage or ledger handle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-handles-" });
  try {
    const config = parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0, hostname: "127.0.0.1" },
      network: { listen: { port: 0, hostname: "127.0.0.1" } },
      roles: { storage: false, inference: false, validator: false },
      dashboard: { enabled: false },
      heartbeatMs: 0,
    });
    await using node = await startNode(config);
    assert.equal(node.storage, undefined);
    assert.equal(node.ledger, undefined, "nor, without the validator role, a ledger handle");
    // It serves no model: its port forwards to the peers that do.
    assert.ok(node.inference);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
