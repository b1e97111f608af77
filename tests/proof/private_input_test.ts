import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { openInput, SealedInputError, sealInput } from "../../proof/private_input.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("private input: only the chosen validator opens it; peers see ciphertext", () => {
  const validator = Identity.generate();
  const storage = Identity.generate();
  const ctx = enc.encode("job:model+nonce");
  const secret = "my private prompt about things";
  const box = sealInput(enc.encode(secret), validator.publicKey, ctx);
  assert.equal(dec.decode(openInput(box, validator, ctx)), secret);
  assert.ok(!dec.decode(box.ciphertext).includes("private"));
  assert.throws(() => openInput(box, storage, ctx), SealedInputError);
  assert.throws(() => openInput(box, validator, enc.encode("another job")), SealedInputError);
  const tampered = { ...box, ciphertext: box.ciphertext.slice() };
  tampered.ciphertext[0] ^= 1;
  assert.throws(() => openInput(tampered, validator, ctx), SealedInputError);
});

Deno.test("private input: two seals of the same prompt differ (fresh ephemeral key and nonce)", () => {
  const validator = Identity.generate();
  const a = sealInput(enc.encode("same"), validator.publicKey);
  const b = sealInput(enc.encode("same"), validator.publicKey);
  assert.notDeepEqual(a.ciphertext, b.ciphertext);
  assert.notDeepEqual(a.ephemeral, b.ephemeral);
});

Deno.test("private input: the validator rebuilds a private job whose id matches; another job's shell fails", async () => {
  const { jobId } = await import("../../protocols/job.ts");
  const { openJobPrompt, sealJobPrompt } = await import("../../proof/private_input.ts");
  const validator = Identity.generate();
  const job = {
    kind: "text" as const,
    model: "bafkreimodel",
    prompt: "confidential: quarterly numbers",
    params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: "n-1",
  };
  const sealed = sealJobPrompt(job, validator.publicKey);
  const { prompt: _p, ...shell } = job;
  assert.equal(jobId(openJobPrompt(shell, sealed, validator)), jobId(job));
  assert.throws(
    () => openJobPrompt({ ...shell, nonce: "n-2" }, sealed, validator),
    SealedInputError,
  );
  assert.throws(() => openJobPrompt(shell, sealed, Identity.generate()), SealedInputError);
});
