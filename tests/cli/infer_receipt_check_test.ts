/**
 * `cli.ts infer` and the job's receipt (red-team review s77, F4): the summary says whether the
 * receipt signs the text that was printed (`receipt ok`), does not (`receipt does not match
 * (reason)`, exit 1), or could not be checked for want of `--allow-env` (`receipt not checked`);
 * `--receipt-out FILE` writes the receipt as it came, for `verifyReceipt`.
 */
import { runInfer } from "../../cli/infer_command.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_GENERATION_PARAMS } from "../../protocols/job.ts";
import { signReceipt, textOutputHash, verifyReceipt } from "../../protocols/receipt.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { doneFrame, framesServer, startFrame, tokenFrame } from "../client/_stub_servers.ts";

/** What the worker computed, and signed. */
const SIGNED_TEXT = ["w", " th"];

/** A receipt, in the JSON form a `done` carries, signing `text` as a 2-token job's output. */
function receiptFor(text: string): unknown {
  const hex = (byte: string) => byte.repeat(32);
  return toJsonValue(signReceipt({
    v: 1,
    kind: "text",
    jobId: hex("ab"),
    model: "x",
    inputHash: hex("01"),
    params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 8 },
    outputHash: textOutputHash(text),
    commitment: { scheme: "vf-fp1", root: hex("02"), chunkSize: 16, tokenBytes: 2 },
    tokenCount: 2,
    timings: { startedAt: 0, firstTokenMs: 1, totalMs: 2 },
  }, Identity.generate()));
}

/** `infer` against a node that streams `texts` and ends with `receipt`; what it said. */
async function inferWith(
  texts: string[],
  receipt: unknown,
  args: string[] = [],
  io: Record<string, unknown> = {},
): Promise<{ status: number; out: string; err: string }> {
  await using server = framesServer((id) => [
    startFrame(id),
    ...texts.map((text, index) => tokenFrame(id, index, text)),
    { ...doneFrame(id, texts.length), ...(receipt === undefined ? {} : { receipt }) },
  ]);
  const out: string[] = [];
  const err: string[] = [];
  const status = await runInfer(
    ["--url", `ws://127.0.0.1:${server.addr.port}`, "--max-tokens", "8", ...args, "Hello"],
    { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), ...io },
  );
  return { status, out: out.join(""), err: err.join("") };
}

Deno.test("infer: a receipt that signs the printed text is reported `receipt ok`, exit 0", async () => {
  const { status, out, err } = await inferWith(SIGNED_TEXT, receiptFor(SIGNED_TEXT.join("")));
  assertEquals(out, "w th");
  assert(/job [0-9a-f]{12}, receipt ok \(not proof of the prompt\)\]\n/.test(err), err);
  assertEquals(status, 0);
});

Deno.test("infer: a real receipt replayed under other text says `receipt does not match (output_mismatch)` and exits 1", async () => {
  const { status, out, err } = await inferWith(
    ["The answer ", "is NO"],
    receiptFor(SIGNED_TEXT.join("")),
  );
  assertEquals(out, "The answer is NO");
  assert(err.includes(", receipt does not match (output_mismatch)]"), err);
  assert(!err.includes("receipt ok"), err);
  assert(/\nerror: the receipt does not vouch for the text above/.test(err), err);
  assertEquals(status, 1);
});

Deno.test("infer: a receipt that is not one (a hostile node's junk) says `receipt does not match (malformed)` and exits 1", async () => {
  const { status, err } = await inferWith(SIGNED_TEXT, { hello: "\x1b]0;owned\x07" });
  assert(err.includes(", receipt does not match (malformed)]"), err);
  assertEquals(err.includes("\x1b"), false, JSON.stringify(err));
  assertEquals(status, 1);
});

Deno.test("infer: where the receipt check cannot load (no --allow-env), the summary says `receipt not checked`, never `receipt` alone", async () => {
  const { status, err } = await inferWith(SIGNED_TEXT, { hello: "world" }, [], {
    receiptVerifier: () => Promise.resolve(undefined),
  });
  assert(err.includes(", receipt not checked (needs --allow-env)]"), err);
  assertEquals(status, 0);
});

Deno.test("infer --receipt-out FILE writes the receipt as it came, which verifyReceipt checks against the printed text", async () => {
  const dir = await Deno.makeTempDir({ prefix: "infer_receipt_" });
  try {
    const file = `${dir}/receipt.json`;
    const receipt = receiptFor(SIGNED_TEXT.join(""));
    const { status, out } = await inferWith(SIGNED_TEXT, receipt, ["--receipt-out", file], {
      receiptVerifier: () => Promise.resolve(undefined),
    });
    assertEquals(status, 0);
    const written = JSON.parse(await Deno.readTextFile(file));
    assertEquals(written, receipt);
    assertEquals(verifyReceipt(written, { output: out }).ok, true);
    // Other text: the file is still written (to be looked at), and the check refuses it.
    const replayed = await inferWith(["other"], receipt, ["--receipt-out", file, "--force"]);
    assertEquals(replayed.status, 1);
    const again = JSON.parse(await Deno.readTextFile(file));
    assertEquals(verifyReceipt(again, { output: replayed.out }).ok, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("infer --receipt-out FILE on a job that ends without a receipt writes nothing, says so and exits 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "infer_receipt_" });
  try {
    const file = `${dir}/receipt.json`;
    const { status, err } = await inferWith(SIGNED_TEXT, undefined, ["--receipt-out", file]);
    assert(err.includes(`no receipt to write to ${file}`), err);
    assertEquals(status, 1);
    assertEquals(await Deno.stat(file).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("infer --help documents the receipt statuses, the exit status on a mismatch, --receipt-out, and a per-job idle timeout", async () => {
  const out: string[] = [];
  assertEquals(
    await runInfer(["--help"], { stdout: (t) => void out.push(t), stderr: () => {} }),
    0,
  );
  const help = out.join("");
  assert(help.includes("--receipt-out FILE"), help);
  assert(help.includes("receipt ok"), help);
  assert(help.includes("receipt does not match"), help);
  assert(help.includes("receipt not checked"), help);
  assert(/does not match[^]*exits 1/.test(help), help);
  assert(
    /--idle-timeout S +give up when the job sends nothing of its own for S seconds/.test(help),
    help,
  );
});

Deno.test("cli.ts infer run with --allow-net alone neither prompts for nor needs env access: it says `receipt not checked`", async () => {
  await using server = framesServer((id) => [
    startFrame(id),
    ...SIGNED_TEXT.map((text, index) => tokenFrame(id, index, text)),
    { ...doneFrame(id, 2), receipt: receiptFor(SIGNED_TEXT.join("")) },
  ]);
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "cli.ts",
      "infer",
      "--url",
      `ws://127.0.0.1:${server.addr.port}`,
      "Hello",
    ],
    cwd: new URL("../..", import.meta.url),
    stdin: "null",
  }).output();
  const err = new TextDecoder().decode(child.stderr);
  assertEquals(new TextDecoder().decode(child.stdout), "w th");
  assert(err.includes(", receipt not checked (needs --allow-env)]"), err);
  assertEquals(child.code, 0, err);
});
