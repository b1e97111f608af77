// A stand-in for `cli.ts start` (cli/start_command.ts): a SwarmHost, and on a stop signal (the
// first argument: SIGINT by default, SIGHUP or SIGTERM) a graceful stop that takes a moment (the
// node drains) before it closes the host. Prints JSON at the end.
import { SwarmHost } from "../../network/swarm_host.ts";
import { Identity } from "../../protocols/identity.ts";

const logs: string[] = [];
const states: string[] = [];
const host = await SwarmHost.start({
  identity: Identity.generate(),
  bootstrap: [],
  bind: "127.0.0.1",
  restart: { initialMs: 250, maxMs: 10_000 }, // the default
  onPeer: (p) => p.close(),
  onState: (s) => states.push(s),
  log: (l) => logs.push(l),
});
const firstPid = host.pid;
const signal = (Deno.args[0] ?? "SIGINT") as "SIGINT" | "SIGHUP" | "SIGTERM";
Deno.addSignalListener(signal, async () => {
  // The node's graceful stop: actors drain before NetworkActor.postStop closes the host.
  await new Promise((r) => setTimeout(r, 1_000));
  const pidAtClose = host.pid;
  await host.close();
  console.log(JSON.stringify({ firstPid, pidAtClose, restarts: host.restarts, states, logs }));
  Deno.exit(0);
});
console.log(`READY ${firstPid}`);
