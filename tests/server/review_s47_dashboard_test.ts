/**
 * Review (s47) of the operator dashboard.
 *
 * - The training panel's view (`node/dashboard_sources.ts`) carried every round the coordinator
 *   ever finished, in every snapshot (one a second to every open page): a coordinator that runs
 *   until stopped (`training.rounds: 0`, the default) made each tick larger for good, though the
 *   page draws the last 200 (its chart) and lists the last 20.
 * - The dashboard socket bounded text messages only: a binary one, of any size Deno takes, was
 *   read and answered `bad_message` with the socket left open, from a client nobody let in (on
 *   another machine, without a key) as from one let in; `/v1/stream` closes either (1009).
 */
import { assert, assertEquals } from "./_assert.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { dashboardSources } from "../../node/dashboard_sources.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import type { CoordinatorMessage, CoordinatorStatus } from "../../training/round_coordinator.ts";
import { quietSources } from "./_dashboard_sources.ts";

/** A coordinator that has finished `rounds` rounds, each leaving one trainer out. */
function coordinatorWith(rounds: number): ActorRef<CoordinatorMessage> {
  const status: CoordinatorStatus = {
    round: rounds,
    model: "bafkcurrent",
    initialLoss: 5,
    trainers: ["aa".repeat(32)],
    convicted: [],
    history: Array.from({ length: rounds }, (_, round) => ({
      round,
      startModel: `bafkstart${round}`,
      model: `bafkmodel${round}`,
      accepted: ["aa".repeat(32)],
      excluded: [{ key: "bb".repeat(32), reason: "its report came late" }],
      heldOutLoss: 4 - round / rounds,
    })),
  };
  return {
    ask: <R>() => Promise.resolve(structuredClone(status) as R),
  } as unknown as ActorRef<CoordinatorMessage>;
}

Deno.test("review s47: the dashboard's training view carries the latest rounds, not every round a long-running coordinator ever finished", async () => {
  const view = (rounds: number) =>
    dashboardSources({
      publicKey: new Uint8Array(32),
      system: {} as ActorSystem,
      inferenceName: "inference",
      network: () => undefined,
      validator: () => undefined,
      storage: () => undefined,
      coordinator: () => coordinatorWith(rounds),
    }).training!();

  const few = await view(3);
  assertEquals(few?.coordinator?.rounds.map((r) => r.round), [0, 1, 2], "a short run: all of it");

  const many = (await view(20_000))?.coordinator;
  assert(many !== undefined);
  const shown = many.rounds.map((r) => r.round);
  assertEquals(shown.at(-1), 19_999, "the newest round is shown");
  assertEquals(shown, [...shown].sort((a, b) => a - b), "oldest first");
  assert(shown.length >= 200, `the page's chart keeps 200 rounds; got ${shown.length}`);
  assert(
    shown.length <= 1_000,
    `a snapshot a second carries ${shown.length} rounds (${
      JSON.stringify(many).length
    } bytes of JSON), every tick, to every page`,
  );
  assertEquals(many.round, 20_000, "the next round's number still says how far the run is");
});

// ---- the socket's message limit, binary messages included ---------------------------------

const KEY = "a-real-api-key-0123456789";

/** A node whose every client is on another machine (its peer address is not loopback). */
function remoteNode() {
  const sources: DashboardSources = quietSources();
  const port: InferencePort = {
    submit: () => Promise.reject(new Error("no jobs")),
    models: () => Promise.resolve([]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(port),
    edge: { maxRequestBytes: 4096, apiKeys: [KEY] },
    dashboard: { sources, jobs, operatorToken: "op-token-0123456789abcdef", tickMs: 60_000 },
  });
  const remote = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
  return serve({
    app: { fetch: (req: Request) => app.fetch(req, { remoteAddr: remote }) },
    hostname: "127.0.0.1",
    port: 0,
  });
}

/** The dashboard socket of `url`: what it got, and its close code once closed. */
async function openSocket(url: string) {
  const ws = new WebSocket(url.replace("http", "ws") + "/dashboard/live");
  const messages: { type: string; code?: string; access?: string }[] = [];
  const closed = Promise.withResolvers<number>();
  ws.onmessage = (e) => messages.push(JSON.parse(e.data));
  let code: number | undefined;
  ws.onclose = (e) => closed.resolve(code = e.code);
  await new Promise((r) => (ws.onopen = r));
  await eventually(() => messages.length >= 2 ? true : undefined, "the hello and the refusal");
  /**
   * Send `data`: the close code if the socket was closed for it, or `"open"` once it is answered
   * with a refusal (`bad_message`) instead.
   */
  const afterSending = async (data: string | Uint8Array) => {
    const answered = messages.length;
    ws.send(data as Uint8Array<ArrayBuffer>);
    return await eventually(
      () =>
        code ??
          (messages.slice(answered).some((m) => m.code === "bad_message") ? "open" : undefined),
      "a close, or a refusal",
    );
  };
  return { ws, messages, closed: closed.promise, afterSending };
}

Deno.test("review s47: a binary message over the dashboard socket's limit closes it (1009) as a text one does, before and after the client is let in", async () => {
  const server = remoteNode();
  try {
    const stranger = await openSocket(server.url);
    assertEquals(stranger.messages[0].access, "none");
    // A small binary message is refused and the socket stays (as before).
    assertEquals(await stranger.afterSending(new Uint8Array(16)), "open");
    // Over an auth's size (4096 bytes): closed, as a text message that large is.
    assertEquals(await stranger.afterSending("x".repeat(5_000)), 1009, "text, as before");
    const other = await openSocket(server.url);
    assertEquals(
      await other.afterSending(new Uint8Array(1 << 20)),
      1009,
      "a 1 MiB binary message from a client nobody let in",
    );

    const reader = await openSocket(server.url);
    reader.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => reader.messages.some((m) => m.access === "read") || undefined, "in");
    assertEquals(
      await reader.afterSending(new Uint8Array(5_000)),
      1009,
      "a binary message over http.maxRequestBytes (4096) from a client let in",
    );
  } finally {
    await server.shutdown();
  }
});
