/**
 * A stored file's read cut for idleness (`server/read_slot_body.ts`: its client took nothing for
 * `READ_IDLE_TIMEOUT_MS` and its slot was wanted) is told through the node's log, in its format,
 * as the SSE answers' cut-off is since review s77 vclient F6 (stop 78). Before, the only trace was
 * the line `Deno.serve` prints for every errored body, outside the node's logger: under
 * `--log-format json` a line that is not JSON. A read that declared its length is now closed short
 * of it (the runtime drops the connection, and prints nothing); one without a length still errors.
 */
import { assert, assertEquals } from "./_assert.ts";
import { runLogChild } from "./_log_child.ts";
import { READ_IDLE_TIMEOUT_MS, slotHeldBody } from "../../server/read_slot_body.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";

/** A store read of two 100-byte pieces, then its end. */
function twoPieces(): ReadableStream<Uint8Array> {
  return ReadableStream.from([new Uint8Array(100), new Uint8Array(100)]);
}

Deno.test("a read cut for idleness is one line of the node's log naming the path; an answer of declared length is closed short of it, one without errors with client_idle", async () => {
  for (const sized of [true, false]) {
    const timers = new FakeTimers();
    const logged: string[] = [];
    const path = "/v1/files/bafkfile";
    const reader = slotHeldBody(twoPieces(), () => {}, {
      timers,
      sized,
      path,
      log: (line) => logged.push(line),
    }).getReader();
    await reader.read(); // one piece, then the client reads no more
    timers.fireFor(READ_IDLE_TIMEOUT_MS);
    assertEquals(logged.length, 1, logged.join("\n"));
    assert(logged[0].includes(path) && logged[0].includes("read was cut"), logged[0]);
    const end = await reader.read().then(
      (result) => result.done ? "closed" : "more",
      (error) => (error as { code?: string }).code,
    );
    assertEquals(end, sized ? "closed" : "client_idle");
  }
});

Deno.test("a stored file's read cut for idleness over a real server under --log-format json: every line of the node's stderr is JSON, one naming the cut read, and the client's connection ends short of its Content-Length", async () => {
  const { code, out, err } = await runLogChild(
    new URL("./_read_idle_cut_child.ts", import.meta.url),
    ["json"],
  );
  assertEquals(code, 0, err);
  const result = JSON.parse(out);
  assertEquals([result.idleCuts, result.second, result.short], [1, 206, true], err);
  const lines = err.split("\n").filter((line) => line !== "");
  const records = lines.map((line) => {
    try {
      return JSON.parse(line) as { msg?: string };
    } catch {
      throw new Error(`a stderr line that is not JSON: ${line}`);
    }
  });
  assert(
    records.some((record) =>
      record.msg?.includes(result.path) && record.msg.includes("read was cut")
    ),
    err,
  );
});
