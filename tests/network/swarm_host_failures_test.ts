/**
 * The swarm host when things go wrong: a host that dies before it is ready, a join the host
 * fails, restarts (their backoff, joins and leaves while the host is down), and a peer that
 * sends more than the node reads. Stand-in hosts (`_fake_swarm_host.mjs`, shell scripts) where
 * the DHT plays no part, the real host on a local testnet (127.0.0.1) where it does.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  SWARM_HOST_SCRIPT,
  SwarmHost,
  SwarmHostError,
  type SwarmPeer,
} from "../../network/swarm_host.ts";
import { startLocalTestnet } from "../../network/swarm_testnet.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { base, FAKE_HOST, script, settled, stateWatch } from "./_swarm_host_fixture.ts";
import { TextLineStream } from "../../tools/node_process.ts";

const MIB = 1024 * 1024;

/** The fake host, each op it is sent logged to `log` (see `_fake_swarm_host.mjs`). */
async function fakeHost(): Promise<{ dir: string; nodePath: string; log: string }> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-swarm-failures-" });
  const log = join(dir, "ops.jsonl");
  const nodePath = join(dir, "node");
  await Deno.writeTextFile(
    nodePath,
    `#!/bin/sh\nFAKE_SWARM_HOST_LOG=${log} exec node ${FAKE_HOST}\n`,
    { mode: 0o755 },
  );
  return { dir, nodePath, log };
}

async function opsLogged(log: string): Promise<{ pid: number; op: string; topic: string }[]> {
  const text = await Deno.readTextFile(log).catch(() => "");
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

function topicOf(first: number, last: number): Uint8Array {
  const topic = new Uint8Array(32);
  topic[0] = first;
  topic[31] = last;
  return topic;
}

Deno.test({
  name:
    "swarm host: a host that exits before it is ready fails start() with its exit code and last stderr lines, and is not restarted",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await script(
      `echo run >> "$(dirname "$0")/runs"\n` +
        `for i in 1 2 3 4 5 6 7; do echo "line $i" >&2; done\nexit 3`,
    );
    try {
      const logs: string[] = [];
      const error = await settled(
        SwarmHost.start({
          ...base(),
          nodePath,
          restart: { initialMs: 1, maxMs: 1 },
          log: (l) => logs.push(l),
        }).then(() => undefined, (e) => e),
        "start()",
      );
      assert.ok(error instanceof SwarmHostError, `start() rejects: ${error}`);
      assert.match(error.message, /exited before it was ready \(code 3\)/);
      assert.match(error.message, /line 3 \| line 4 \| line 5 \| line 6 \| line 7$/);
      assert.equal(await Deno.readTextFile(join(dir, "runs")), "run\n", "run once");
      assert.ok(!logs.some((l) => l.includes("restarting")), logs.join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "swarm host: a DHT address that cannot be bound fails start() with the host's reason",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: the bind fails locally.
    const error = await settled(
      SwarmHost.start({ ...base(), bind: "192.0.2.1" }).then(async (host) => {
        await host.close();
        return undefined;
      }, (e) => e),
      "start()",
    );
    assert.ok(error instanceof SwarmHostError, `start() rejects: ${error}`);
    assert.match(error.message, /exited before it was ready \(code 1\): error: \S/);
  },
});

Deno.test({
  name: "swarm host: the host reports an op it could not do with the op's topic",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const child = new Deno.Command("node", {
      args: [SWARM_HOST_SCRIPT],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
      env: { NODE_NO_WARNINGS: "1" },
    }).spawn();
    const stdin = child.stdin.getWriter();
    const events = child.stdout.pipeThrough(new TextDecoderStream())
      .pipeThrough(new TextLineStream()).getReader();
    const next = async () => JSON.parse((await settled(events.read(), "an event")).value!);
    const line = (message: unknown) =>
      stdin.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
    try {
      await line({
        seed: toHex(Identity.generate().exportSecretKey()),
        dataPort: 9, // never used: no peer comes
        token: "00".repeat(32),
        bootstrap: [],
        bind: "127.0.0.1",
      });
      assert.equal((await next()).ev, "ready");
      await line({ op: "join", topic: "abcd", server: true, client: true });
      // (A "warning" that no DHT node answered may come first: this host has no bootstrap.)
      let event = await next();
      while (event.ev === "warning") event = await next();
      assert.deepEqual({ ...event, message: undefined }, {
        ev: "error",
        topic: "abcd",
        op: "join",
        message: undefined,
      });
      assert.match(event.message, /32 bytes/);
    } finally {
      await stdin.close().catch(() => {});
      await events.cancel().catch(() => {});
      await child.status;
    }
  },
});

Deno.test({
  name:
    "swarm host: a join the host fails rejects with the host's reason, and is not joined again after a restart",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath, log } = await fakeHost();
    const watch = stateWatch();
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 10, maxMs: 10 },
      onState: watch.onState,
    });
    try {
      const bad = topicOf(0xee, 1);
      await assert.rejects(
        settled(host.join(bad), "join()"),
        (e) => e instanceof SwarmHostError && /flush failed \(fake\)/.test(e.message),
      );
      // Restarted, the host joins what was joined, not the failed topic.
      const good = topicOf(0, 2);
      await host.join(good);
      const up = watch.next("up");
      Deno.kill(host.pid!, "SIGKILL");
      await up;
      const after = topicOf(0, 3);
      await host.join(after); // sent after the rejoins: logged after them
      const ops = (await opsLogged(log)).filter((o) => o.pid === host.pid);
      assert.deepEqual(ops.map((o) => o.topic), [toHex(good), toHex(after)]);
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm host: restarts back off while the host keeps dying soon after it comes up, and start again from initialMs once it was up as long as the next delay",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await fakeHost();
    const watch = stateWatch();
    const logs: string[] = [];
    let killOnUp = false;
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 200, maxMs: 10_000 },
      onState: (state) => {
        watch.onState(state);
        if (state === "up" && killOnUp) {
          killOnUp = false;
          Deno.kill(host.pid!, "SIGKILL"); // dies as soon as it is up
        }
      },
      log: (l) => logs.push(l),
    });
    try {
      // Up (start) and killed, restarted after 200 ms and killed as soon as it is up: 400 ms.
      killOnUp = true;
      let up = watch.next("up");
      Deno.kill(host.pid!, "SIGKILL");
      await up;
      up = watch.next("up");
      await up;
      // Up for longer than the next delay would be (800 ms): a fresh failure, 200 ms again.
      await new Promise((resolve) => setTimeout(resolve, 900));
      up = watch.next("up");
      Deno.kill(host.pid!, "SIGKILL");
      await up;
      const delays = logs.filter((l) => l.includes("restarting")).map((l) =>
        Number(l.match(/in (\d+) ms/)![1])
      );
      assert.deepEqual(delays, [200, 400, 200], logs.join("\n"));
      assert.equal(host.restarts, 3);
      assert.deepEqual(watch.states, ["up", "down", "up", "down", "up", "down", "up"]);
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm host: while the host is down, a join waits for the restarted host's rejoin, and a leave resolves at once and is not joined again",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath, log } = await fakeHost();
    const watch = stateWatch();
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 50, maxMs: 50 },
      onState: watch.onState,
    });
    try {
      const [kept, left, later] = [topicOf(0, 1), topicOf(0, 2), topicOf(0, 3)];
      await host.join(left);
      const down = watch.next("down");
      Deno.kill(host.pid!, "SIGKILL");
      await down;
      // Down: the restart is at least a timer away.
      const outcome = (e: Error) => [`rejected: ${e.message}`];
      const joining = host.join(kept).then(() => [...watch.states], outcome);
      const leaving = host.leave(left).then(() => [...watch.states], outcome);
      assert.deepEqual(await settled(leaving, "leave()"), ["up", "down"], "resolved while down");
      assert.deepEqual(await settled(joining, "join()"), ["up", "down", "up"], "after the rejoin");
      await host.join(later); // sent after the rejoins: logged after them
      const ops = (await opsLogged(log)).filter((o) => o.pid === host.pid);
      assert.deepEqual(ops.map((o) => o.topic), [toHex(kept), toHex(later)]);
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "swarm host: close() rejects a join waiting for a restart, and nothing restarts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, nodePath } = await fakeHost();
    const watch = stateWatch();
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 60_000, maxMs: 60_000 },
      onState: watch.onState,
    });
    try {
      const down = watch.next("down");
      Deno.kill(host.pid!, "SIGKILL");
      await down;
      const joining = host.join(topicOf(0, 1)).then(() => "resolved", (e) => e);
      await host.close(); // also clears the restart's minute-long timer: the test ends now
      const error = await joining;
      assert.ok(error instanceof SwarmHostError && /stopped/.test(error.message), String(error));
      await assert.rejects(host.join(topicOf(0, 2)), SwarmHostError);
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "swarm host: a peer connection the node does not read is closed by its host above maxUnreadBytes, and the sender's writes fail",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const testnet = await startLocalTestnet();
    const peers = [Promise.withResolvers<SwarmPeer>(), Promise.withResolvers<SwarmPeer>()];
    const hosts: SwarmHost[] = [];
    const closed = Promise.withResolvers<string>();
    try {
      for (const [i, found] of peers.entries()) {
        hosts.push(
          await SwarmHost.start({
            identity: Identity.generate(),
            bootstrap: testnet.bootstrap,
            bind: "127.0.0.1",
            maxUnreadBytes: MIB,
            onPeer: (p) => found.resolve(p),
            log: (l) => {
              if (i === 1 && l.includes("unread by the node")) closed.resolve(l);
            },
          }),
        );
      }
      const topic = crypto.getRandomValues(new Uint8Array(32));
      await Promise.all(hosts.map((h) => h.join(topic)));
      const [a, b] = await Promise.all(peers.map((f) => f.promise));
      // B never reads. A writes until its writes fail, or 64 MiB went in.
      const writer = a.duplex.writable.getWriter();
      const chunk = new Uint8Array(256 * 1024);
      let written = 0;
      try {
        while (written < 64 * MIB) {
          await writer.write(chunk);
          written += chunk.length;
        }
      } catch {
        // the connection was closed
      }
      assert.ok(written < 64 * MIB, `A's writes were all accepted (${written / MIB} MiB)`);
      const line = await settled(closed.promise, "B's host's log line");
      // B's host names A (B's peer's key) and the amount.
      const prefix = toHex(b.remoteKey).slice(0, 16);
      assert.match(line, new RegExp(`^swarm host: peer ${prefix}: [\\d.]+ MiB unread by the node`));
      assert.ok(line.includes("over the 1.0 MiB limit"), line);
      b.close();
    } finally {
      await Promise.all(hosts.map((h) => h.close()));
      await testnet.stop();
    }
  },
});

Deno.test({
  name:
    "swarm host: a host that never says ready fails start() in time; a restarted one that hangs is killed and started again, and a join waiting for it is done",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The first run hangs: start() fails at the deadline.
    const hung = await script(`exec sleep 600`);
    try {
      const error = await settled(
        SwarmHost.start({ ...base(), nodePath: hung.nodePath, readyTimeoutMs: 300 }).then(
          () => undefined,
          (e) => e,
        ),
        "start()",
      );
      assert.ok(error instanceof SwarmHostError, `start() rejects: ${error}`);
      assert.match(error.message, /did not come up in 0.3 s/);
    } finally {
      await Deno.remove(hung.dir, { recursive: true });
    }
    // Run 1 is the fake host; run 2 hangs in start-up (a review at stop 34: nothing noticed,
    // the node stayed without a swarm, its joins waited forever); run 3 is the fake host again.
    const { dir, nodePath } = await script(
      `n=$(cat "$(dirname "$0")/runs" 2>/dev/null || echo 0); n=$((n+1)); ` +
        `echo $n > "$(dirname "$0")/runs"\n` +
        `if [ $n -eq 2 ]; then exec sleep 600; fi\nexec node ${FAKE_HOST}`,
    );
    const logs: string[] = [];
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 10, maxMs: 10 },
      readyTimeoutMs: 2_000,
      log: (l) => logs.push(l),
    });
    try {
      Deno.kill(host.pid!, "SIGKILL");
      await settled(host.join(new Uint8Array(32).fill(3)), "the join");
      assert.equal((await Deno.readTextFile(join(dir, "runs"))).trim(), "3");
      assert.ok(
        logs.some((l) => l.includes("did not come up in 2 s; stopping it")),
        logs.join("\n"),
      );
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
