/**
 * A job's input by CID at the edge: `veriflow_input` on `/v1/completions` and `input` on a
 * WebSocket `infer` name a stored file whose text the model reads before the prompt; a value
 * that cannot name one is a 400 naming the field, a file stored nowhere a 404.
 */
import { assert, assertEquals } from "./_assert.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { cidOf } from "../../protocols/cid.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { loadTinyModel, StaticModels } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;
const STORED = new TextEncoder().encode("Minutes of the meeting: the budget passed. ");
const INPUT = cidOf(STORED);

async function withApp(fn: (app: ReturnType<typeof createApp>) => Promise<void>): Promise<void> {
  const model = await loadTinyModel();
  const system = new ActorSystem({ name: "input-edge" });
  try {
    const models = new StaticModels([model]);
    const inference = await system.spawn<InferenceMessage>({
      name: "node/inference",
      factory: () => new InferenceActor({ models }),
    });
    const readInput = (cid: string) =>
      cid === INPUT
        ? Promise.resolve(STORED)
        : Promise.reject(new ChunkNotFoundError(cid, "any storage peer"));
    await fn(createApp({ inference: new LocalInferencePort({ inference, models, readInput }) }));
  } finally {
    await system.shutdown();
  }
}

async function complete(app: ReturnType<typeof createApp>, body: Record<string, unknown>) {
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ max_tokens: 8, seed: 3, temperature: 0.7, ...body }),
    }),
    { remoteAddr: LOOPBACK },
  );
  return { status: response.status, body: await response.json() };
}

Deno.test("POST /v1/completions with veriflow_input: the model reads the stored text, then the prompt", async () => {
  await withApp(async (app) => {
    const withInput = await complete(app, { prompt: "Next: ", veriflow_input: INPUT });
    assertEquals(withInput.status, 200, JSON.stringify(withInput.body));
    const inline = await complete(app, { prompt: new TextDecoder().decode(STORED) + "Next: " });
    assertEquals(withInput.body.choices[0].text, inline.body.choices[0].text);
    assertEquals(withInput.body.usage.prompt_tokens, inline.body.usage.prompt_tokens);
  });
});

Deno.test("veriflow_input that cannot name a one-chunk file is a 400 on the field; one stored nowhere a 404", async () => {
  await withApp(async (app) => {
    const dagPb = "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y";
    for (const value of [dagPb, "not-a-cid", 7]) {
      const answer = await complete(app, { prompt: "x", veriflow_input: value });
      assertEquals(answer.status, 400, JSON.stringify(answer.body));
      assertEquals(answer.body.error.param, "veriflow_input");
    }
    const missing = await complete(app, {
      prompt: "x",
      veriflow_input: cidOf(new TextEncoder().encode("never stored")),
    });
    assertEquals(missing.status, 404, JSON.stringify(missing.body));
    assertEquals(missing.body.error.code, "input_not_found");
  });
});

Deno.test("WS infer with input streams the same tokens as the stored text sent inline", async () => {
  await withApp(async (app) => {
    const abort = new AbortController();
    const server = serve({ app, port: 0, signal: abort.signal });
    const ws = await WsProbe.open(`${server.url.replace("http:", "ws:")}/v1/stream`);
    try {
      const text = async (id: string, fields: Record<string, unknown>) => {
        ws.send({ type: "infer", id, max_tokens: 8, seed: 3, temperature: 0.7, ...fields });
        return { end: await ws.end(id), out: ws.text(id) };
      };
      const a = await text("a", { prompt: "Next: ", input: INPUT });
      assertEquals(a.end.type, "done", JSON.stringify(a.end));
      const b = await text("b", { prompt: new TextDecoder().decode(STORED) + "Next: " });
      assertEquals(a.out, b.out);
      assert(a.out.length > 0);
    } finally {
      await ws.close();
      abort.abort();
      await server.finished;
    }
  });
});

Deno.test("review s54: veriflow_input on /v1/chat/completions is a 400 unsupported_field, not a chat answer that ignored the file", async () => {
  await withApp(async (app) => {
    const chat = async (body: Record<string, unknown>) => {
      const response = await app.fetch(
        new Request("http://127.0.0.1/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            max_tokens: 4,
            seed: 3,
            messages: [{ role: "user", content: "Summarize the file." }],
            ...body,
          }),
        }),
        { remoteAddr: LOOPBACK },
      );
      return { status: response.status, body: await response.json() };
    };
    const refused = await chat({ veriflow_input: INPUT });
    assertEquals(refused.status, 400, JSON.stringify(refused.body));
    assertEquals(refused.body.error.code, "unsupported_field");
    assertEquals(refused.body.error.param, "veriflow_input");
    // null asks for nothing, as for the other refused fields.
    assertEquals((await chat({ veriflow_input: null })).status, 200);
  });
});
