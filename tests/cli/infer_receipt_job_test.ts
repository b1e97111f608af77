/**
 * `cli.ts infer` and a receipt for another job (review s77 vclient, F3): a receipt that signs the
 * printed text but names another job id than the job's `done`, another model than its `start`, or
 * another `maxTokens` than the command asked for is refused (`receipt does not match (…)`, exit
 * 1); a receipt that passes says on the summary line that it is no proof of the prompt.
 */
import { runInfer } from "../../cli/infer_command.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { DEFAULT_MAX_TOKENS } from "../../protocols/job_token_bounds.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { doneFrame, framesServer, startFrame, tokenFrame } from "../client/_stub_servers.ts";

const TEXTS = ["Paris", " is"];
/** The job id and model the stub's `start` and `done` name. */
const JOB_ID = String(startFrame("x").job_id);
const MODEL = String(startFrame("x").model);

/** A receipt signing the stub's text, for `jobId`, `model` and `maxTokens`. */
function receipt(jobId = JOB_ID, model = MODEL, maxTokens = 8): unknown {
  return toJsonValue(signReceipt({
    v: 1,
    kind: "text",
    jobId,
    model,
    inputHash: "01".repeat(32),
    params: { ...DEFAULT_GENERATION_PARAMS, maxTokens },
    outputHash: textOutputHash(TEXTS.join("")),
    commitment: { scheme: "vf-fp1", root: "02".repeat(32), chunkSize: 16, tokenBytes: 2 },
    tokenCount: TEXTS.length,
    timings: { startedAt: 0, firstTokenMs: 1, totalMs: 2 },
  }, Identity.generate()));
}

/** `infer` (with `args` before the prompt) against a stub ending with `signed`. */
async function inferWith(signed: unknown, args = ["--max-tokens", "8"]) {
  await using server = framesServer((id) => [
    startFrame(id),
    ...TEXTS.map((text, index) => tokenFrame(id, index, text)),
    { ...doneFrame(id, TEXTS.length), receipt: signed },
  ]);
  const out: string[] = [];
  const err: string[] = [];
  const status = await runInfer(
    ["--url", `ws://127.0.0.1:${server.addr.port}`, ...args, "What is the capital of France?"],
    { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t) },
  );
  return { status, out: out.join(""), err: err.join("") };
}

Deno.test("infer: a receipt for another job id than the done's is refused (job_mismatch), exit 1", async () => {
  const { status, out, err } = await inferWith(receipt("ee".repeat(32)));
  assertEquals(out, "Paris is");
  assert(err.includes(", receipt does not match (job_mismatch)]"), err);
  assert(err.includes("eeeeeeeeeeee"), err);
  assert(!err.includes("receipt ok"), err);
  assertEquals(status, 1);
});

Deno.test("infer: a receipt for another model than the start's is refused (model_mismatch), exit 1", async () => {
  const { status, err } = await inferWith(receipt(JOB_ID, "bafkreievilmodel"));
  assert(err.includes(", receipt does not match (model_mismatch)]"), err);
  assert(err.includes("bafkreievilmodel"), err);
  assertEquals(status, 1);
});

Deno.test("infer: a receipt whose maxTokens is not --max-tokens (or the node's default) is refused (params_mismatch), exit 1", async () => {
  const asked = await inferWith(receipt(JOB_ID, MODEL, 4096));
  assert(asked.err.includes(", receipt does not match (params_mismatch)]"), asked.err);
  assert(asked.err.includes("4096"), asked.err);
  assertEquals(asked.status, 1);
  // Without --max-tokens the node's default is what the job asked for.
  const byDefault = await inferWith(receipt(JOB_ID, MODEL, 8), []);
  assert(byDefault.err.includes("(params_mismatch)"), byDefault.err);
  assertEquals(byDefault.status, 1);
  const defaultOk = await inferWith(receipt(JOB_ID, MODEL, DEFAULT_MAX_TOKENS), []);
  assertEquals(defaultOk.status, 0, defaultOk.err);
});

Deno.test("infer: a receipt for this job says on the summary line that it is not proof of the prompt, exit 0", async () => {
  const { status, err } = await inferWith(receipt());
  assert(/job [0-9a-f]{12}, receipt ok \(not proof of the prompt[^\]]*\)\]\n/.test(err), err);
  assertEquals(status, 0);
});
