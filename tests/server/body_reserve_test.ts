/**
 * The bodies of clients already reading another hold at most 3/4 of the node's body budget
 * together, and one client reads at most `MAX_CLIENT_BODIES` bodies at once
 * (`server/body_limit.ts`). Review verify4, F1: four API keys, each sending 51 bodies of 64 KiB
 * and then exactly the minimum rate, held the whole 32 MiB budget until the 60 s body deadline,
 * and every other client got 429 `too_many_request_bodies`.
 */
import { assert, assertEquals } from "./_assert.ts";
import { BodyBudget, MAX_CLIENT_BODIES, readBodyText } from "../../server/body_limit.ts";
import { BODY_RATE_MIN_BYTES, BODY_RATE_WINDOW_MS } from "../../server/body_min_rate.ts";
import { FakeTimers, turns } from "../_helpers/fake_timers.ts";

const MIB = 1 << 20;
/** The body deadline here: far from the rate window, so each timer is told by its ms. */
const BODY_TIMEOUT_MS = 600_000;

/** The budget as the OpenAI routes build it with the defaults: 32 largest bodies of 1 MiB. */
function defaultBudget() {
  return new BodyBudget(32 * MIB, { minClientBytes: MIB });
}

/** Body readers on one budget and fake timers. */
function reader(budget: BodyBudget) {
  const timers = new FakeTimers();
  const open: ReadableStreamDefaultController<Uint8Array>[] = [];
  const refusals: string[] = [];
  /** Begin a body of `client` that sends `bytes` now and is not ended. */
  const stall = (client: string, bytes: number) => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        c.enqueue(new Uint8Array(bytes).fill(32));
      },
    });
    open.push(controller);
    const request = new Request("http://127.0.0.1/v1/completions", { method: "POST", body });
    readBodyText(request, MIB, { timeoutMs: BODY_TIMEOUT_MS, timers }, budget, client)
      .catch((error) => refusals.push(error.code));
  };
  /** Every open body sends `bytes`, then a rate window ends. */
  const window = async (bytes: number) => {
    for (const controller of open) {
      try {
        controller.enqueue(new Uint8Array(bytes).fill(32));
      } catch { /* cut */ }
    }
    await turns(10);
    timers.fireFor(BODY_RATE_WINDOW_MS);
    await turns(10);
  };
  /** A newcomer's body of `bytes`, sent whole: `read` or the refusal's code. */
  const honest = (bytes: number) =>
    readBodyText(
      new Request("http://127.0.0.1/v1/completions", { method: "POST", body: " ".repeat(bytes) }),
      MIB,
      { timeoutMs: BODY_TIMEOUT_MS, timers },
      budget,
      "honest",
    ).then(() => "read", (error) => error.code);
  return { stall, window, honest, refusals };
}

for (const keys of [4, 16]) {
  Deno.test(`${keys} API keys, each sending 51 bodies at exactly the minimum rate, do not refuse a newcomer's largest body: past ${MAX_CLIENT_BODIES} a key's bodies are refused at once`, async () => {
    const budget = defaultBudget();
    const node = reader(budget);
    for (let key = 0; key < keys; key++) {
      for (let i = 0; i < 51; i++) node.stall(`key ${key}`, 64 * 1024 + 1);
    }
    await turns(10);
    for (let window = 0; window < 5; window++) await node.window(BODY_RATE_MIN_BYTES);
    assertEquals(await node.honest(MIB - 1), "read");
    assertEquals(node.refusals.length, keys * (51 - MAX_CLIENT_BODIES));
    assert(node.refusals.every((code) => code === "too_many_request_bodies"), `${node.refusals}`);
    for (let key = 0; key < keys; key++) {
      assertEquals(budget.bodiesOf(`key ${key}`), MAX_CLIENT_BODIES);
    }
  });
}

Deno.test("clients already reading a body hold at most 3/4 of the budget together: 4 keys stalling their largest bodies leave a newcomer room for its largest", async () => {
  const budget = defaultBudget();
  const node = reader(budget);
  for (let key = 0; key < 4; key++) {
    for (let i = 0; i < MAX_CLIENT_BODIES; i++) node.stall(`key ${key}`, MIB - 100);
  }
  await turns(20);
  assert(budget.busyHeld <= budget.busyMaxBytes, `${budget.busyHeld}`);
  assertEquals(budget.busyMaxBytes, 24 * MIB);
  assert(budget.held <= 28 * MIB, `held ${budget.held}`);
  assertEquals(await node.honest(MIB - 1), "read");
  // Their bodies past 3/4 were refused, though the whole budget had room for each.
  assertEquals(node.refusals, [
    "too_many_request_bodies",
    "too_many_request_bodies",
    "too_many_request_bodies",
    "too_many_request_bodies",
  ]);
});
