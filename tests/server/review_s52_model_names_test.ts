/**
 * Review s52: on a router, the models a client can name are what connected workers list, and a
 * name is only a label a lister chose (a CID names content; a name names nothing). A stranger
 * that listed its own model under a popular name (`brown`), connected first, took every request
 * by that name: the router resolved a name to the first model listed under it, and the client got
 * another model's text, validated as that model's. A name two models claim is now refused as
 * ambiguous, with their CIDs, so a client asks by CID; a name one model claims resolves as before.
 *
 * @module
 */
import { assertEquals } from "./_assert.ts";
import type { InferencePort, ServedModelInfo } from "../../inference/inference_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { createApp } from "../../server/app.ts";
import { httpStatusOf } from "../../server/http_errors.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { refusingPort } from "./_refusing_port.ts";

const HONEST: ServedModelInfo = { cid: "bafkhonest", name: "brown", kind: "text" };
const SQUATTER: ServedModelInfo = { cid: "bafksquatter", name: "brown", kind: "text" };
const OTHER: ServedModelInfo = { cid: "bafkother", name: "other", kind: "text" };

/** A router's port whose workers list `models` (in the order they connected). */
function listing(models: ServedModelInfo[]): InferencePort {
  return { ...refusingPort(() => undefined), models: () => Promise.resolve(models) };
}

/** What resolving `name` on a gateway over `models` gives: a CID, or an error code. */
async function resolved(models: ServedModelInfo[], name: string): Promise<string> {
  const gateway = new InferenceGateway({ inference: listing(models) });
  return await gateway.resolveModel(name).then((m) => m.cid, (e) => (e as VeriflowError).code);
}

Deno.test("review s52: a model name two listed models claim is refused as ambiguous, whichever was listed first, instead of resolving to the first lister's model", async () => {
  assertEquals(await resolved([SQUATTER, HONEST, OTHER], "brown"), "ambiguous_model");
  assertEquals(await resolved([HONEST, SQUATTER, OTHER], "brown"), "ambiguous_model");
});

Deno.test("review s52: a name one model claims, or a CID, resolves as before, squatter or not", async () => {
  assertEquals(await resolved([HONEST, OTHER], "brown"), HONEST.cid);
  assertEquals(await resolved([SQUATTER, HONEST, OTHER], HONEST.cid), HONEST.cid);
  assertEquals(await resolved([SQUATTER, HONEST, OTHER], "other"), OTHER.cid);
});

Deno.test("review s52: a completion naming an ambiguous model is a 400 invalid_request_error on `model` that names the CIDs to ask by", async () => {
  const app = createApp({ inference: listing([SQUATTER, HONEST]) });
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "brown", prompt: "hi", max_tokens: 1 }),
    }),
    { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } },
  );
  const body = await response.json();
  assertEquals(
    [response.status, body.error?.type, body.error?.code, body.error?.param],
    [400, "invalid_request_error", "ambiguous_model", "model"],
  );
  for (const cid of [HONEST.cid, SQUATTER.cid]) {
    assertEquals(body.error.message.includes(cid), true, `names ${cid}: ${body.error.message}`);
  }
  assertEquals(httpStatusOf(new VeriflowError("ambiguous_model", "x")), 400);
});
