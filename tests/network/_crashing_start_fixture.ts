/** A worker that crashes mid-stream (`crashingWorker`) whose `start` says more (review s81 F2). */
import { type InferenceEvent, SubmitMessage } from "../../protocols/inference_messages.ts";
import { linked } from "./_hostile_worker_fixture.ts";
import { type CrashingWorker, signed, start } from "./_scripted_worker_fixture.ts";

/** As `crashingWorker`, with `extra` in its start event. */
export async function crashingWith(
  extra: Record<string, unknown>,
  list: InferenceEvent[],
): Promise<CrashingWorker> {
  const sent = list.filter((e) => e.kind === "token").length;
  const delivered = Promise.withResolvers<void>();
  const worker = await linked((atWorker, submissions, identity) => {
    atWorker.handle(SubmitMessage, (body) => {
      submissions.push(body);
      const all: InferenceEvent[] = [start(body.job, extra), ...list];
      let i = 0;
      return Promise.resolve(
        signed(
          new ReadableStream<InferenceEvent>({
            pull: async (c) => {
              if (i < all.length) return c.enqueue(all[i++]);
              await delivered.promise;
              await atWorker.close();
              await new Promise(() => {});
            },
          }, { highWaterMark: 0 }),
          identity,
          body,
        ),
      );
    });
  });
  return { ...worker, read: (n) => void (n === sent && delivered.resolve()) };
}
