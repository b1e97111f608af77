/**
 * A caller's `onQueued` that throws (red-team review s77, F5): its exception is reported as an
 * event listener's is (`reportError`: the global `error` event, the process's uncaught-error
 * handling by default), not swallowed; the job and the socket go on.
 */
import { StreamClient } from "../../client/stream_client.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { delay } from "../_helpers/wait.ts";
import { doneFrame, framesServer, startFrame } from "./_stub_servers.ts";

Deno.test("an exception thrown by the caller's onQueued is reported (global error event), once per call, and the job still ends", async () => {
  await using server = framesServer((id) => [
    startFrame(id),
    { type: "queued", id, position: 2 },
    { type: "queued", id, position: 1 },
    doneFrame(id, 0),
  ]);
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    reported.push(event.error);
    event.preventDefault(); // handled here: not the test runner's uncaught error
  };
  globalThis.addEventListener("error", onError);
  try {
    using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const places: number[] = [];
    const job = client.infer({ prompt: "x", max_tokens: 4 }, {
      onQueued: (position) => {
        places.push(position);
        throw new TypeError(`the caller's bug at place ${position}`);
      },
    });
    assertEquals((await job.done).finish_reason, "length");
    await delay(0); // the error event, if any, is dispatched by now
    assertEquals(places, [2, 1]);
    assertEquals(reported.length, 2, `reported ${reported.length} errors`);
    assert(reported[0] instanceof TypeError, String(reported[0]));
    assertEquals((reported[1] as Error).message, "the caller's bug at place 1");
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
