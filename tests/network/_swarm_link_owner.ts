/**
 * A node's process as far as its swarm link goes, for `swarm_link_stale_test.ts`: it opens the
 * link in the directory given as its argument, prints the link's address as one JSON line, and
 * runs until it is killed (a node SIGKILLed with its host up).
 */
import { openSwarmLink } from "../../network/swarm_link.ts";

const link = await openSwarmLink(() => {}, { socketDir: Deno.args[0] });
console.log(JSON.stringify({ pid: Deno.pid, address: link.address }));
setInterval(() => {}, 60_000); // alive until killed
