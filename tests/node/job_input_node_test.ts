/**
 * A node as it runs: a file put through `POST /v1/files` is a job's input by its CID
 * (`veriflow_input`); the node reads it from its own store, the model reads its text before the
 * prompt, and the job gets its receipt as any other.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { buildGptModel } from "../../inference/model_builder.ts";

Deno.test("a file put on a node is a job's input by its CID: the text the model reads before the prompt, with a receipt", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-input-node-" });
  try {
    await buildGptModel({ size: "tiny", seed: 0, outDir: join(dir, "model") });
    const models = new ModelRegistry({ intraOpThreads: 1 });
    const { cid: model } = await models.register(join(dir, "model"));
    const config = parseNodeConfig({
      dataDir: join(dir, "data"),
      http: { port: 0, hostname: "127.0.0.1" },
      network: { listen: { port: 0, hostname: "127.0.0.1" } },
      roles: { validator: false },
      dashboard: { enabled: false },
      heartbeatMs: 0,
    });
    const node = await startNode(config, { models });
    try {
      const stored = "Field notes, day three: the heron came back to the pond. ";
      const put = await fetch(`${node.url}/v1/files?name=notes.txt`, {
        method: "POST",
        body: stored,
        headers: { "content-type": "text/plain" },
      });
      assert.equal(put.status, 201);
      const { cid } = await put.json();
      const complete = async (body: Record<string, unknown>) => {
        const response = await fetch(`${node.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model, max_tokens: 8, seed: 5, temperature: 0.8, ...body }),
        });
        return { status: response.status, body: await response.json() };
      };
      const withInput = await complete({ prompt: "Day four: ", veriflow_input: cid });
      assert.equal(withInput.status, 200, JSON.stringify(withInput.body));
      assert.ok(withInput.body.veriflow_receipt, JSON.stringify(withInput.body));
      const inline = await complete({ prompt: stored + "Day four: " });
      assert.equal(withInput.body.choices[0].text, inline.body.choices[0].text);
    } finally {
      await node.shutdown();
      await node.finished;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
