import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import {
  openInput,
  openJobPrompt,
  privateJobContext,
  SEALED_INPUT_VERSION,
  type SealedInput,
  SealedInputError,
  type SealedInputRefusal,
  sealInput,
  sealJobPrompt,
} from "../../proof/private_input.ts";
import { DEFAULT_GENERATION_PARAMS, jobId, type TextJob } from "../../protocols/job.ts";

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

// ---- refusals (review s73, F1-F3) ----------------------------------------------------------------
// A box comes from another node and a recipient key from a peer: every refusal, sealing or
// opening, is the one typed SealedInputError with its stable code, never a TypeError or RangeError
// out of the curve or cipher library, and a sealed prompt opens only for the job it was sealed for.

/** Assert `f` throws SealedInputError with `reason`; returns its message. */
function refused(f: () => unknown, reason: SealedInputRefusal): string {
  let message = "";
  assert.throws(f, (e) => {
    assert.ok(e instanceof SealedInputError, `expected SealedInputError, got ${e}`);
    assert.equal(e.code, "sealed_input_unopenable");
    assert.equal(e.reason, reason, e.message);
    message = e.message;
    return true;
  });
  return message;
}

const SHELL: Omit<TextJob, "prompt"> = {
  kind: "text",
  model: "bafkreimodel",
  params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 16 },
  nonce: "n-1",
};

Deno.test("sealing to a key that is not a usable ed25519 public key is refused as bad_recipient_key", () => {
  const plaintext = enc.encode("s");
  const neutral = new Uint8Array(32);
  neutral[0] = 1; // (0, 1): the neutral element
  const orderTwo = new Uint8Array(32).fill(0xff); // y = p - 1 = -1: (0, -1), of order 2
  orderTwo[0] = 0xec;
  orderTwo[31] = 0x7f;
  const notAPoint = new Uint8Array(32).fill(0xff); // y >= p
  for (const key of [new Uint8Array(31), new Uint8Array(33), notAPoint, neutral, orderTwo]) {
    refused(() => sealInput(plaintext, key), "bad_recipient_key");
  }
  refused(
    () => sealInput(plaintext, "ab".repeat(32) as unknown as Uint8Array),
    "bad_recipient_key",
  );
  assert.match(refused(() => sealInput(plaintext, neutral), "bad_recipient_key"), /low-order/);
});

Deno.test("a box of the wrong shape is refused as malformed before any field is used", () => {
  const validator = Identity.generate();
  const box = sealInput(enc.encode("secret"), validator.publicKey);
  const shapes: unknown[] = [
    null,
    undefined,
    "a box",
    [box],
    { v: SEALED_INPUT_VERSION },
    { ...box, recipient: undefined },
    { ...box, recipient: box.recipient.slice(0, 31) },
    { ...box, ephemeral: box.ephemeral.slice(0, 31) },
    { ...box, nonce: box.nonce.slice(0, 12) },
    { ...box, nonce: new Uint8Array(32) },
    { ...box, ciphertext: box.ciphertext.slice(0, 10) },
    { ...box, ciphertext: Array.from(box.ciphertext) },
  ];
  for (const shape of shapes) {
    refused(() => openInput(shape as SealedInput, validator), "malformed");
  }
  refused(() => openInput(box, validator, "ctx" as unknown as Uint8Array), "malformed");
});

Deno.test("a box of another format version is refused as unsupported_version", () => {
  const validator = Identity.generate();
  const box = sealInput(enc.encode("secret"), validator.publicKey);
  assert.equal(box.v, SEALED_INPUT_VERSION);
  refused(
    () => openInput({ ...box, v: SEALED_INPUT_VERSION + 1 }, validator),
    "unsupported_version",
  );
  refused(
    () => openInput({ ...box, v: String(box.v) as unknown as number }, validator),
    "unsupported_version",
  );
});

Deno.test("a job prompt sealed under the old context (model and nonce only) does not open", () => {
  const validator = Identity.generate();
  const shell = {
    kind: "text" as const,
    model: "bafkreimodel",
    params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: "n-1",
  };
  const old = sealInput(enc.encode("secret"), validator.publicKey, enc.encode("bafkreimodel\nn-1"));
  refused(() => openJobPrompt(shell, old, validator), "unopenable");
});

Deno.test("a box opened by a key it does not name is refused as not_for_this_key; one altered as unopenable", () => {
  const validator = Identity.generate();
  const box = sealInput(enc.encode("secret"), validator.publicKey);
  refused(() => openInput(box, Identity.generate()), "not_for_this_key");
  const altered = { ...box, ephemeral: box.ephemeral.slice() };
  altered.ephemeral[0] ^= 1;
  refused(() => openInput(altered, validator), "unopenable");
  refused(() => openInput({ ...box, ephemeral: new Uint8Array(32) }, validator), "unopenable");
});

Deno.test("a sealed prompt opens only under its own job: a shell differing in any field but the prompt is refused", () => {
  const validator = Identity.generate();
  const job: TextJob = { ...SHELL, prompt: "my secret prompt" };
  const box = sealJobPrompt(job, validator.publicKey);
  assert.equal(jobId(openJobPrompt(SHELL, box, validator)), jobId(job));
  const others: Omit<TextJob, "prompt">[] = [
    { ...SHELL, params: { ...SHELL.params, maxTokens: 4096 } },
    { ...SHELL, params: { ...SHELL.params, temperature: 1.9 } },
    { ...SHELL, precision: "fp16" },
    { ...SHELL, input: "bafkreiinput" },
    { ...SHELL, requester: "ab".repeat(32) },
    { ...SHELL, model: "bafkreiother" },
    { ...SHELL, nonce: "n-2" },
  ];
  for (const other of others) {
    refused(() => openJobPrompt(other, box, validator), "unopenable");
  }
});

Deno.test("job contexts are unambiguous: fields that join to the same text give different contexts", () => {
  const a = privateJobContext({ ...SHELL, model: "m", nonce: "a\nb" });
  const b = privateJobContext({ ...SHELL, model: "m\na", nonce: "b" });
  assert.notDeepEqual(a, b);
  // The prompt is not part of the context (the validator has only the shell).
  assert.deepEqual(privateJobContext({ ...SHELL, prompt: "x" }), privateJobContext(SHELL));
});

Deno.test("a sealed prompt that is not UTF-8 is refused as not_utf8", () => {
  const validator = Identity.generate();
  const bad = sealInput(
    new Uint8Array([0xff, 0xfe, 0x80]),
    validator.publicKey,
    privateJobContext(SHELL),
  );
  refused(() => openJobPrompt(SHELL, bad, validator), "not_utf8");
});

Deno.test("a prompt or shell that has no faithful encoding is refused as malformed", () => {
  const validator = Identity.generate();
  refused(
    () => sealJobPrompt({ ...SHELL, prompt: "lone \ud800" }, validator.publicKey),
    "malformed",
  );
  refused(() => privateJobContext({ ...SHELL, nonce: "lone \udc00" }), "malformed");
  refused(() => privateJobContext(null as unknown as TextJob), "malformed");
});
