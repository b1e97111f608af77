/**
 * Review at stop 54 of the swarm host seen from Deno (`network/swarm_host.ts`): what a host
 * says while the node closes it, and the liveness check when the node itself was the slow one.
 * Stand-in hosts (Node.js scripts in a temporary directory, `_fake_swarm_host.mjs`): no DHT
 * plays a part.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SwarmHost } from "../../network/swarm_host.ts";
import { base, FAKE_HOST, settled, stateWatch } from "./_swarm_host_fixture.ts";

/**
 * A stand-in host: it says "ready" (with the key of the seed it is given) and answers pings.
 * Run again in the same directory (a restart), it says nothing until its stdin closes (the
 * node's close()), then says "ready" and exits: a restarted host whose start-up finished just
 * as the node closed it.
 */
const READY_LATE = `
import { existsSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createPrivateKey, createPublicKey } from "node:crypto";
const mark = process.argv[2];
const first = !existsSync(mark);
if (first) writeFileSync(mark, "");
const send = (event) => process.stdout.write(JSON.stringify(event) + "\\n");
let key;
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const message = JSON.parse(line);
  if (key === undefined) {
    const der = Buffer.from("302e020100300506032b657004220420" + message.seed, "hex");
    const spki = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" }))
      .export({ format: "der", type: "spki" });
    key = spki.subarray(-32).toString("hex");
    if (first) send({ ev: "ready", publicKey: key });
    return;
  }
  if (message.op === "ping") send({ ev: "pong" });
});
lines.on("close", () => {
  if (!first && key !== undefined) send({ ev: "ready", publicKey: key });
  process.exit(0);
});
`;

Deno.test({
  name:
    "swarm review s54: a restarted host that says ready while the node closes it is not reported up (nor watched, nor sent the topics)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-swarm-s54-" });
    const nodePath = join(dir, "node");
    await Deno.writeTextFile(join(dir, "ready_late.mjs"), READY_LATE);
    await Deno.writeTextFile(
      nodePath,
      `#!/bin/sh\nexec node ${join(dir, "ready_late.mjs")} ${join(dir, "started")}\n`,
      { mode: 0o755 },
    );
    const watch = stateWatch();
    const logs: string[] = [];
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 10, maxMs: 10 },
      onState: watch.onState,
      log: (line) => logs.push(line),
    });
    try {
      const firstPid = host.pid;
      const down = watch.next("down");
      Deno.kill(firstPid!, "SIGKILL");
      await down;
      // The restarted host runs (spawned after the 10 ms backoff), not ready yet.
      await settled(
        (async () => {
          while (host.pid === firstPid) await new Promise((r) => setTimeout(r, 10));
        })(),
        "the restarted host",
      );
    } finally {
      await host.close();
    }
    // What the closed host said last is no transport coming up: the node closed it. (Taken
    // for one, it was reported up after close() began, and a liveness check was started that
    // close() had already cleared, left running after it: it later took the gone host for hung
    // and said so in the log of a node that had stopped its swarm.)
    assert.deepEqual(watch.states, ["up", "down"], logs.join("\n"));
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "swarm review s54: a host that answered every ping is not taken for hung when the node's own event loop stalled past hangTimeoutMs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-swarm-s54-" });
    const nodePath = join(dir, "node");
    await Deno.writeTextFile(nodePath, `#!/bin/sh\nexec node ${FAKE_HOST}\n`, { mode: 0o755 });
    const watch = stateWatch();
    const logs: string[] = [];
    const host = await SwarmHost.start({
      ...base(),
      nodePath,
      restart: { initialMs: 10, maxMs: 10 },
      hangTimeoutMs: 300, // asked every 100 ms
      onState: watch.onState,
      log: (line) => logs.push(line),
    });
    const pid = host.pid;
    try {
      // A few checks go by and are answered.
      await new Promise((r) => setTimeout(r, 250));
      // The node's own event loop is busy for longer than hangTimeoutMs (a long synchronous
      // step, a process stopped and continued, a starved machine): no ping is sent meanwhile,
      // so the host has nothing to answer. Its silence is the node's, not the host's.
      const until = performance.now() + 700;
      while (performance.now() < until) { /* busy */ }
      // Checks after the stall: the host answers the first ping it is sent.
      await new Promise((r) => setTimeout(r, 450));
      assert.deepEqual(logs.filter((l) => l.includes("did not answer")), [], logs.join("\n"));
      assert.deepEqual(watch.states, ["up"]);
      assert.equal(host.pid, pid);
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A stand-in host that answers each join with an event whose fields are of the wrong type
 * (`topic` a number), then with the join's own "joined".
 */
const ODD_EVENT = `
import { createInterface } from "node:readline";
import { createPrivateKey, createPublicKey } from "node:crypto";
const send = (event) => process.stdout.write(JSON.stringify(event) + "\\n");
let ready = false;
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const message = JSON.parse(line);
  if (!ready) {
    ready = true;
    const der = Buffer.from("302e020100300506032b657004220420" + message.seed, "hex");
    const spki = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" }))
      .export({ format: "der", type: "spki" });
    send({ ev: "ready", publicKey: spki.subarray(-32).toString("hex") });
    return;
  }
  if (message.op === "ping") send({ ev: "pong" });
  if (message.op !== "join") return;
  send({ ev: "error", topic: 7, op: "join", message: "a topic that is no string" });
  send({ ev: "joined", topic: message.topic });
});
lines.on("close", () => process.exit(0));
`;

Deno.test({
  name:
    "swarm review s54: an event the node cannot take (a field of the wrong type) is logged, and the host's later events still arrive",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "veriflow-swarm-s54-" });
    const nodePath = join(dir, "node");
    await Deno.writeTextFile(join(dir, "odd_event.mjs"), ODD_EVENT);
    await Deno.writeTextFile(nodePath, `#!/bin/sh\nexec node ${join(dir, "odd_event.mjs")}\n`, {
      mode: 0o755,
    });
    const logs: string[] = [];
    const host = await SwarmHost.start({ ...base(), nodePath, log: (line) => logs.push(line) });
    try {
      // Its "joined" comes after the odd event: read, the join is done.
      await settled(host.join(new Uint8Array(32).fill(3)), "the join after an odd event", 10_000);
      assert.ok(logs.some((l) => l.includes('"topic":7')), logs.join("\n"));
    } finally {
      await host.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
