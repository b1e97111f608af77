// A node's own process for the swarm host's environment test (swarm_host_limits_test.ts): it runs
// with the environment the test gives it (an API key among it), starts a SwarmHost on the
// stand-in `node` script named by its argument, and exits once the start has settled. Its own
// process, because the environment is the process's: set in the test's, every test file beside
// it under `--parallel` shared it, and any node one of them spawned meanwhile took the key.
import { SwarmHost } from "../../network/swarm_host.ts";
import { base, settled } from "./_swarm_host_fixture.ts";

const [nodePath] = Deno.args;
await settled(
  SwarmHost.start({ ...base(), nodePath, restart: { initialMs: 1, maxMs: 1 } })
    .then(() => undefined, () => undefined),
  "start()",
);
Deno.exit(0);
