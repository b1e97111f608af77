import assert from "node:assert/strict";
import type { ActorContext } from "../../actors/actor.ts";
import { Identity } from "../../protocols/identity.ts";
import type { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeOutcome,
  type ChallengeRequest,
  secureRandom,
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorOptions,
} from "../../training/training_validator.ts";

/**
 * Ask a TrainingValidator to challenge a report. Only the coin is reached when it is not drawn,
 * so the report, connection and context are stand-ins that fail loudly if anything else is.
 */
async function challenge(options: Partial<TrainingValidatorOptions>): Promise<ChallengeOutcome> {
  const validator = new TrainingValidator({
    identity: Identity.generate(),
    models: {} as RoundModels,
    ...options,
  });
  const request = { type: "challenge" } as ChallengeRequest;
  const ctx = {} as ActorContext<TrainingValidatorMessage>;
  const reply = await validator.receive(request, ctx) as { result: Promise<ChallengeOutcome> };
  return await reply.result;
}

Deno.test("the training challenge coin draws from the injected random source", async () => {
  const draws: number[] = [];
  const random = (value: number) => () => (draws.push(value), value);
  assert.deepEqual(
    await challenge({ challengeProbability: 0.5, random: random(0.5) }),
    { challenged: false },
  );
  assert.deepEqual(
    await challenge({ challengeProbability: 0.25, random: random(0.7) }),
    { challenged: false },
  );
  assert.deepEqual(draws, [0.5, 0.7]);
  // A draw below p goes past the coin: here to the stand-in report, which it then reads.
  await assert.rejects(
    () => challenge({ challengeProbability: 0.5, random: random(0.1) }),
    /report/,
    "a draw below p challenges",
  );
  assert.deepEqual(draws, [0.5, 0.7, 0.1]);
});

Deno.test("by default the training challenge coin comes from crypto.getRandomValues, not Math.random", async () => {
  const mathRandom = Math.random;
  const getRandomValues = crypto.getRandomValues;
  // Math.random would challenge (0 < p); the CSPRNG, all ones, draws just under 1 and does not.
  Math.random = () => 0;
  crypto.getRandomValues = (<T extends ArrayBufferView | null>(array: T): T => {
    if (array !== null) new Uint8Array(array.buffer, array.byteOffset, array.byteLength).fill(0xff);
    return array;
  }) as typeof crypto.getRandomValues;
  try {
    assert.equal(secureRandom(), 1 - 2 ** -53);
    assert.deepEqual(await challenge({ challengeProbability: 0.5 }), { challenged: false });
  } finally {
    Math.random = mathRandom;
    crypto.getRandomValues = getRandomValues;
  }
});

Deno.test("secureRandom draws uniformly in [0, 1)", () => {
  const n = 20_000;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const u = secureRandom();
    assert.ok(u >= 0 && u < 1, String(u));
    sum += u;
  }
  // The mean of n uniforms has standard deviation 1/sqrt(12n) ≈ 0.002: 0.02 is 10 of them.
  assert.ok(Math.abs(sum / n - 0.5) < 0.02, String(sum / n));
});
