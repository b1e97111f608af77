/**
 * The package's `./receipt` entry point (`receipt.ts`): a program that only checks the receipts it
 * was handed imports it with `--allow-env` alone, where the main entry point (`mod.ts`, which loads
 * onnxruntime's native addon at import) also needs `--allow-read` and `--allow-ffi`.
 */
import { sampleReceipt } from "./protocols/_sample_receipt.ts";
import assert from "node:assert/strict";
import { Identity } from "../protocols/identity.ts";
import type { TextJob } from "../protocols/job.ts";
import { toHex } from "../protocols/hash.ts";

const job: TextJob = {
  kind: "text",
  model: "bafkreiaic6elys7yxdtflkrp554tnfpwwr5es7rueyujkdigjkxakzqc2u",
  prompt: "Once upon a time",
  params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
  nonce: "entry-test",
};
const output = " there was";

/** The receipt as a client API hands it over: JSON, with `worker` and `sig` in hex. */
function receiptAsJson(): Record<string, unknown> {
  const receipt = sampleReceipt(Identity.generate(), { tokenCount: 3 }, job, output);
  return { ...receipt, worker: toHex(receipt.worker), sig: toHex(receipt.sig) };
}

/**
 * Run a script that imports `entry` and checks the receipt against the job and output, in a
 * process allowed only the environment; its exit code and output.
 */
async function verifyWithEnvOnly(entry: URL) {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/verify.ts`;
    await Deno.writeTextFile(
      script,
      `import { verifyReceipt } from ${JSON.stringify(entry.href)};\n` +
        `const check = verifyReceipt(${JSON.stringify(receiptAsJson())}, ` +
        `{ job: ${JSON.stringify(job)}, output: ${JSON.stringify(output)} });\n` +
        `console.log(JSON.stringify(check));\n` +
        `if (!check.ok) Deno.exit(2);\n`,
    );
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-env",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
    return { code, stdout: text(stdout), stderr: text(stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the ./receipt entry point verifies a receipt with --allow-env alone; the main one cannot", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(config.exports["./receipt"], "./receipt.ts");
  const light = await verifyWithEnvOnly(new URL("../receipt.ts", import.meta.url));
  assert.equal(light.code, 0, `${light.stdout}\n${light.stderr}`);
  assert.equal(JSON.parse(light.stdout).ok, true);
  const main = await verifyWithEnvOnly(new URL("../mod.ts", import.meta.url));
  assert.notEqual(main.code, 0, "mod.ts asks for more than the environment at import");
  assert.match(main.stderr, /NotCapable/);
});
