/**
 * Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the Deno node and its
 * swarm host (spawned in the same group). The node stops gracefully; the host should stay up
 * until the node closes it (leaving the swarm cleanly). Run the node stand-in in its own group
 * (setsid) and send SIGINT to that group, as a terminal does. (The host used to die of it, and
 * the node logged a crash and started a new host mid-shutdown: a review at stop 34.)
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const CHILD = fileURLToPath(new URL("./_swarm_sigint_child.ts", import.meta.url));

Deno.test("swarm host: Ctrl-C (SIGINT to the process group) does not kill the host under a node that stops gracefully", async () => {
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "run", "-A", CHILD],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("READY")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  // The terminal's Ctrl-C: SIGINT to every process of the foreground group.
  const kill = await new Deno.Command("kill", { args: ["-INT", "--", `-${child.pid}`] }).output();
  assert.equal(kill.code, 0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  await child.status;
  const result = JSON.parse(out.trim().split("\n").at(-1)!);
  assert.deepEqual(
    {
      restarts: result.restarts,
      states: result.states,
      samePid: result.pidAtClose === result.firstPid,
    },
    { restarts: 0, states: ["up"], samePid: true },
    "the host died of the SIGINT and was restarted during the node's graceful stop",
  );
});
