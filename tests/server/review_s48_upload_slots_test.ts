/**
 * Review s48 of uploads (`POST /v1/files`, `server/file_routes.ts`) that trickle: an upload is
 * held to a silence deadline, not a length one, so a client sending a byte just within each
 * `http.requestBodyTimeoutMs` keeps its upload open for as long as it likes, and with it a
 * chunk's worth of buffered bytes (256 KiB by default), a locked pending record and its
 * connection. Many such uploads at once must not grow without bound: past the node's limit of
 * open uploads the next is refused at once (429 `too_many_uploads`), and a slot comes back when
 * an upload ends, whichever way it ends.
 */
import type { Hono } from "hono";
import { assert, assertEquals } from "./_assert.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { EdgeEnv } from "../../server/client_access.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

const LOOPBACK: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };

/**
 * The file routes with a limit of open uploads. Called through a wider type: the option is new,
 * and the test must fail (not fail to compile) on code that lacks it.
 */
const filesWith = fileRoutes as unknown as (
  storage: () => GatewayStorage | undefined,
  options: {
    requestBodyTimeoutMs: number;
    timers: FakeTimers;
    maxUploads: number;
    maxUploadsPerKey?: number;
  },
) => Hono<EdgeEnv>;

/** A store whose put reads its source to the end; counts the puts under way. */
function readingStore(): { port: GatewayStorage; open: () => number } {
  let open = 0;
  const port = {
    put: async (source: ReadableStream<Uint8Array>) => {
      open++;
      try {
        let size = 0;
        for await (const chunk of source) size += chunk.byteLength;
        return { cid: "bafkfile", size, chunkCount: 1 };
      } finally {
        open--;
      }
    },
  } as unknown as GatewayStorage;
  return { port, open: () => open };
}

function upload(
  app: Hono<EdgeEnv>,
  body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>,
  key?: string,
) {
  const headers: Record<string, string> = { host: "127.0.0.1" };
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  return Promise.resolve(app.fetch(
    new Request("http://127.0.0.1/v1/files", { method: "POST", headers, body }),
    { remoteAddr: LOOPBACK },
  ));
}

/** A body that sent its first bytes and then nothing (a trickle between two of its bytes). */
function trickling(): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) return new Promise<void>(() => {});
      sent = true;
      controller.enqueue(new Uint8Array(1000));
    },
  }, { highWaterMark: 0 });
}

Deno.test("review s48: uploads that trickle hold at most the node's open uploads: the next is refused at once with 429 too_many_uploads, and a slot comes back when one ends (a 408 or a finished put)", async () => {
  const timers = new FakeTimers();
  const { port, open } = readingStore();
  const app = createApp({ inference: {} as InferencePort });
  app.route("/v1", filesWith(() => port, { requestBodyTimeoutMs: 5_000, timers, maxUploads: 2 }));
  const held = [upload(app, trickling()), upload(app, trickling())];
  await eventually(() => open() === 2 && timers.armed.size === 2, "two uploads under way");
  const refused = upload(app, trickling());
  const answered = tracker(refused);
  await turns(10);
  assert(answered(), "a third trickling upload was taken on past the limit of open uploads");
  const response = await refused;
  const { error } = await response.json();
  assertEquals([response.status, error?.code], [429, "too_many_uploads"]);
  assert(response.headers.get("retry-after") !== null, "a 429 without Retry-After");
  assertEquals(open(), 2, "the refused upload reached the store");
  // The trickling ones go silent past the deadline: 408, and their slots come back.
  timers.fireAll();
  for (const answer of held) assertEquals((await answer).status, 408);
  await eventually(() => open() === 0, "the abandoned puts ended");
  const next = await upload(app, new Uint8Array(300));
  assertEquals(next.status, 201);
  assertEquals((await next.json()).size, 300);
  // And so does a finished one's: as many again fit.
  const again = await Promise.all([upload(app, new Uint8Array(1)), upload(app, new Uint8Array(2))]);
  assertEquals(again.map((r) => r.status), [201, 201]);
  await Promise.all(again.map((r) => r.body?.cancel()));
});

Deno.test("review s49: one API key's trickling uploads hold at most its share of the slots: its next is refused (429 too_many_uploads, naming the key's limit) while another key's still fit, and its slot comes back when one ends", async () => {
  const timers = new FakeTimers();
  const { port, open } = readingStore();
  const [first, second] = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"];
  const app = createApp({ inference: {} as InferencePort, edge: { apiKeys: [first, second] } });
  app.route(
    "/v1",
    filesWith(() => port, {
      requestBodyTimeoutMs: 5_000,
      timers,
      maxUploads: 4,
      maxUploadsPerKey: 2,
    }),
  );
  const held = [upload(app, trickling(), first), upload(app, trickling(), first)];
  await eventually(() => open() === 2, "the first key's two uploads under way");
  const third = upload(app, trickling(), first);
  const answered = tracker(third);
  await turns(10);
  assert(answered(), "the key's third trickling upload was taken on past its limit");
  const refused = await third;
  const { error } = await refused.json();
  assertEquals([refused.status, error?.code], [429, "too_many_uploads"]);
  assert(/API key/.test(error?.message), `not the key's limit: ${error?.message}`);
  assert(refused.headers.get("retry-after") !== null, "a 429 without Retry-After");
  assertEquals(open(), 2, "the refused upload reached the store");
  // The other key is not shut out by the first one's trickles.
  const other = [upload(app, trickling(), second), upload(app, trickling(), second)];
  await eventually(
    () => open() === 4 && timers.armed.size === 4,
    "the second key's uploads under way beside the first's",
  );
  // Past the deadline every trickle ends (408) and each key has its slots back.
  timers.fireAll();
  for (const answer of [...held, ...other]) assertEquals((await answer).status, 408);
  await eventually(() => open() === 0, "the abandoned puts ended");
  const again = await Promise.all([
    upload(app, new Uint8Array(1), first),
    upload(app, new Uint8Array(2), first),
  ]);
  assertEquals(again.map((r) => r.status), [201, 201]);
  await Promise.all(again.map((r) => r.body?.cancel()));
});
