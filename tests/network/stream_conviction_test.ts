/**
 * A lost worker's wrong tokens, end to end in one process: a router (`NetworkInferencePort`) with
 * a real ValidatorActor and ledger, a lying worker that streams the job's tokens with one the
 * job's sampling rule gives near-zero probability and then drops, and an honest worker running
 * the model, which takes the job over and refuses the delivered tokens (`resume_mismatch`). The
 * client is told `delivered_tokens_diverged`; the liar's signed stream reaches the validator,
 * whose replay confirms it, and the liar's stake is cut in the ledger (`docs/PROOF.md`, "A lost
 * worker's wrong tokens").
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { serveInference } from "../../inference/serve_inference.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { type InferenceEvent, SubmitMessage } from "../../protocols/inference_messages.ts";
import { jobId } from "../../protocols/job.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { StaticModels } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  f,
  HONEST_MODELS,
  ledgerReads,
  spawnValidator,
  START,
} from "../actors/_validator_fixture.ts";
import { linked } from "./_hostile_worker_fixture.ts";
import { leastLikely, sampledJob } from "../proof/_stream_fixtures.ts";
import { Workers } from "./_router_doubles.ts";
import { events, signed } from "./_scripted_worker_fixture.ts";

const STAKE = 1_000_000;
/** Tokens the liar streams before it drops; the last of them is wrong. */
const STREAMED = 6;
const WRONG_AT = STREAMED - 1;

/** A sampled job on the honest model. */
const JOB = sampledJob(f.honest, "stream-conviction");

Deno.test("a worker that streams a token the job's rule could not give and drops is slashed in its router's ledger: the takeover refuses its tokens, the client is told, the validator replays the liar's signed stream", async () => {
  const system = new ActorSystem({ name: "stream-conviction" });
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const me = Identity.generate();
  // The honest worker: the model behind an InferenceActor, served over its connection.
  const models = new StaticModels([f.honest]);
  const inference = await system.spawn<InferenceMessage>({
    name: "honest/inference",
    factory: () => new InferenceActor({ models }),
  });
  const local = new LocalInferencePort({ inference, models });
  const honest = await linked((atWorker) => serveInference(atWorker, local));
  const info: ServedModelInfo[] = [...await local.models()];
  // The liar: the job's honest tokens up to WRONG_AT, then the least likely one, signed event by
  // event as any worker signs; it drops once the client has read them.
  let dropLiar = () => {};
  const liar = await linked((atWorker, _submissions, identity) => {
    dropLiar = () => void atWorker.close();
    atWorker.handle(SubmitMessage, async (body) => {
      const ids: number[] = [];
      for await (
        const c of f.honest.generate(f.honest.tokenizer.encode(body.job.prompt), body.job.params)
      ) {
        ids.push(c.tokenId);
        if (ids.length === WRONG_AT) break;
      }
      ids.push((await leastLikely(f.honest, body.job, ids)).token);
      const list: InferenceEvent[] = [
        { kind: "start", jobId: jobId(body.job), model: info[0], promptTokens: 1 },
        ...ids.map((tokenId, index): InferenceEvent => ({
          kind: "token",
          index,
          tokenId,
          text: "?",
        })),
      ];
      return signed(events(list), identity, body);
    });
  });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models: HONEST_MODELS,
  });
  const ledger = ledgerReads(() => validator, clock);
  for (const key of [liar.identity.publicKey, honest.identity.publicKey, me.publicKey]) {
    await validator.ask({ type: "deposit", key, amount: STAKE });
  }
  const workers = new Workers([liar.toWorker, honest.toWorker], info);
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => workers,
  });
  const port = new NetworkInferencePort(network, validator, me, { tokensPerEvent: 1 });
  try {
    const handle = await port.submit(JOB);
    const read: number[] = [];
    const failed = await (async () => {
      for await (const t of handle.tokens) {
        read.push(t.index);
        if (read.length === STREAMED) dropLiar();
      }
    })().then(() => undefined, (e) => (e as { code?: string }).code);
    assert.equal(failed, "delivered_tokens_diverged");
    assert.equal(read.length, STREAMED);
    // The liar's stake is cut by m × the reward of the tokens it signed and of the job's prompt
    // as the replay counts it (the receipt it never became would have locked that, 4d5d1fa), half
    // of it to the router's validator; the honest worker, which refused, loses nothing.
    const promptTokens = f.honest.tokenizer.encode(JOB.prompt).length;
    const slashed = DEFAULT_ECONOMICS.slashMultiplier *
      (STREAMED + promptTokens * DEFAULT_ECONOMICS.promptTokenShare) *
      DEFAULT_ECONOMICS.defaultTokenPrice;
    await eventually(
      async () => (await ledger.account(liar.identity.publicKey)).stake === STAKE - slashed,
      "the liar's stake to be cut",
    );
    assert.equal((await ledger.account(honest.identity.publicKey)).stake, STAKE);
    assert.equal(
      (await ledger.account(me.publicKey)).balance,
      slashed * DEFAULT_ECONOMICS.validatorRewardShare,
    );
  } finally {
    await liar.close();
    await honest.close();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
