/**
 * Which peer cancels sign a `cancelled` receipt on the worker (review s77 F3): only a peer's
 * explicit cancel of a job that names a requester other than the worker's node, which is the only
 * such job anyone can assign and so the only one whose receipt can earn. A job naming no
 * requester, or naming the worker itself, signs nothing when its peer cancels it after tokens, and
 * can be sent again; an assignable one signs, keeps its receipt for the peer to fetch, and is
 * refused again as `duplicate_job` (a second receipt would be equivocation).
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import type { InferenceStats } from "../../actors/inference_actor.ts";
import { RemoteInferencePort } from "../../inference/remote_port.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { params } from "../server/_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import { actorWorker } from "./_actor_worker.ts";

/** Tokens the peer reads before it cancels. */
const READ = 3;
/** Tokens of the job: more than are read, so it is mid-stream at the cancel. */
const MAX_TOKENS = 50;

for (const names of ["another node", "no", "the worker itself"] as const) {
  const signs = names === "another node";
  Deno.test(
    `a peer's cancel after ${READ} tokens of a job that names ${
      names === "no" ? "no" : `${names} as its`
    } requester ${
      signs
        ? "signs a cancelled receipt and the job is refused again"
        : "signs nothing and the job runs again"
    }`,
    async () => {
      const worker = await actorWorker(`peer-cancel-${names}`);
      try {
        const job: TextJob = {
          kind: "text",
          model: worker.model.info.cid,
          prompt: "Hello there",
          params: params({ maxTokens: MAX_TOKENS, temperature: 0.8, seed: 7, stop: [] }),
          nonce: `peer-cancel-${names}`,
        };
        if (names === "another node") job.requester = toHex(Identity.generate().publicKey);
        if (names === "the worker itself") job.requester = toHex(worker.identity.publicKey);
        const port = new RemoteInferencePort(worker.link.to);
        const first = await port.submit(job);
        const reader = first.tokens.getReader();
        for (let i = 0; i < READ; i++) assert(!(await reader.read()).done);
        await reader.cancel();
        // The worker's job has ended (and its end reached the actor) before the job is sent again.
        await eventually(
          async () =>
            (await worker.inference.ask<InferenceStats>({ type: "stats" })).jobsCancelled === 1,
          "the worker's job to end",
        );
        const peer = toHex(worker.link.at.peerKey!);
        if (signs) {
          await eventually(
            () => worker.unsent.get(peer, first.jobId) !== undefined,
            "the cancelled receipt to be kept",
          );
          const kept = worker.unsent.get(peer, first.jobId)!;
          assertEquals(kept.end, "cancelled");
          assert(kept.tokenCount >= READ, `a receipt over ${kept.tokenCount} tokens`);
          const again = await assertRejects(() => port.submit(job), VeriflowError);
          assertEquals(again.code, "duplicate_job");
          return;
        }
        assertEquals(worker.unsent.get(peer, first.jobId), undefined, "a receipt was signed");
        const retry = await port.submit(job);
        let tokens = 0;
        for await (const _ of retry.tokens) tokens++;
        assertEquals(tokens, MAX_TOKENS);
      } finally {
        await worker.close();
      }
    },
  );
}
