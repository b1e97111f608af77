/**
 * SwarmHost: joins and leaves of one topic that overlap (a second asked before the host answered
 * the first). Each call is settled by the host's answer to it (the request's id, echoed by the
 * host), not by the host's answer to another request of the topic; a join the host died before
 * answering takes the restarted host's rejoin's outcome, or fails when a leave of the topic
 * superseded it. Until review s80 (finding F1) a second request resolved the first at once and the
 * host's answer to the first settled the second: a join the host failed resolved, and its topic
 * was joined again after every restart.
 */
import assert from "node:assert/strict";
import { type SwarmHost, SwarmHostError } from "../../network/swarm_host.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  opsIn,
  settled,
  type stateWatch,
  topicOf,
  withLoggingHost,
} from "./_swarm_host_fixture.ts";

/** "joined", or "failed: why". */
const outcome = (p: Promise<void>) =>
  settled(p, "join()").then(() => "joined", (e) => `failed: ${(e as Error).message}`);

/** Kill the host and wait until it is up again; the ops the restarted host was sent. */
async function restarted(host: SwarmHost, watch: ReturnType<typeof stateWatch>, log: string) {
  const up = watch.next("up");
  Deno.kill(host.pid!, "SIGKILL");
  await settled(up, "restart");
  const marker = topicOf(0, 0xff);
  await host.join(marker); // sent after the rejoins: logged after them
  const ops = (await opsIn(log)).filter((o) => o.pid === host.pid);
  assert.equal(ops.at(-1)?.topic, toHex(marker));
  return ops.slice(0, -1);
}

Deno.test({
  name:
    "swarm host: two overlapping joins the host fails both fail, and the topic is not joined after a restart (a host that echoes no id)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withLoggingHost(
      "fake",
      { restart: { initialMs: 10, maxMs: 10 } },
      async ({ host, watch, log }) => {
        const bad = topicOf(0xee, 5); // the stand-in fails every join of it
        const first = outcome(host.join(bad, { server: true, client: true }));
        const second = outcome(host.join(bad, { server: true, client: false }));
        const [a, b] = await Promise.all([first, second]);
        assert.match(a, /^failed: .*flush failed \(fake\)/, "the first join");
        assert.match(b, /^failed: .*flush failed \(fake\)/, "the second join");
        assert.deepEqual(await restarted(host, watch, log), []);
      },
    );
  },
});

Deno.test({
  name:
    "swarm host: of two overlapping joins of a topic, each hears the host's answer to it: the later one fails, and the topic is not joined after a restart",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const logs: string[] = [];
    await withLoggingHost("joinOrder", {
      restart: { initialMs: 10, maxMs: 10 },
      log: (l) => logs.push(l),
    }, async ({ host, watch, log }) => {
      const topic = topicOf(0x06, 6); // its first join succeeds, every later one fails
      const first = outcome(host.join(topic, { server: true, client: true }));
      const second = outcome(host.join(topic, { server: false, client: true }));
      const [a, b] = await Promise.all([first, second]);
      assert.equal(a, "joined", "the host joined it the first time");
      assert.match(b, /^failed: .*flush failed \(stand-in\)/, "the host failed the second join");
      const ops = await opsIn(log);
      assert.deepEqual(ops.map((o) => [o.op, typeof o.id]), [["join", "number"], [
        "join",
        "number",
      ]]);
      assert.notEqual(ops[0].id, ops[1].id, "each request has its own id");
      assert.deepEqual(await restarted(host, watch, log), []);
    });
  },
});

Deno.test({
  name:
    "swarm host: overlapping joins the host died before answering both take the restarted host's rejoin's outcome, which has the later options",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withLoggingHost(
      "joinOrder",
      { restart: { initialMs: 10, maxMs: 10 } },
      async ({ host, watch, log }) => {
        const topic = topicOf(0xdd, 1); // not answered by the first host, joined by the next
        const when = (p: Promise<void>) =>
          settled(p, "join()").then(() => [...watch.states], (e) => [`failed: ${e.message}`]);
        const first = when(host.join(topic, { server: true, client: true }));
        const second = when(host.join(topic, { server: false, client: true }));
        while ((await opsIn(log)).length < 2) await new Promise((r) => setTimeout(r, 10));
        const rejoins = await restarted(host, watch, log);
        assert.deepEqual(await first, ["up", "down", "up"], "the first join: after the rejoin");
        assert.deepEqual(await second, ["up", "down", "up"], "the second join: after the rejoin");
        assert.deepEqual(rejoins.map((o) => [o.op, o.topic, o.server, o.client]), [
          ["join", toHex(topic), false, true],
        ]);
      },
    );
  },
});

Deno.test({
  name:
    "swarm host: a join superseded by a leave of its topic, that the host died before answering, fails and is not joined after a restart",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withLoggingHost(
      "joinOrder",
      { restart: { initialMs: 10, maxMs: 10 } },
      async ({ host, watch, log }) => {
        const topic = topicOf(0xdd, 2); // the first host never answers its join
        const joining = settled(host.join(topic), "join()").then(() => "joined", (e) => e);
        const leaving = settled(host.leave(topic), "leave()").then(() => "left", (e) => e);
        while ((await opsIn(log)).length < 2) await new Promise((r) => setTimeout(r, 10));
        const rejoins = await restarted(host, watch, log);
        assert.equal(await leaving, "left");
        const error = await joining;
        assert.ok(error instanceof SwarmHostError, `the join: ${error}`);
        assert.match(error.message, /superseded by a leave/);
        assert.deepEqual(rejoins, [], "the restarted host joins nothing");
      },
    );
  },
});
