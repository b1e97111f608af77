// A parent such as `deno task demo` or a test run: starts the stand-in node (its first argument:
// the file the node writes when it stops) with `NodeProcess`, prints the node's pid, then runs
// until it is killed.
import { fileURLToPath } from "node:url";
import { NodeProcess } from "../../tools/node_process.ts";

const STAND_IN = fileURLToPath(new URL("./_stand_in_node.ts", import.meta.url));
const node = NodeProcess.start("stand-in", [Deno.args[0]], STAND_IN);
await node.waitForLine(/^READY$/);
console.log(`NODE ${node.pid}`);
setInterval(() => {}, 60_000);
