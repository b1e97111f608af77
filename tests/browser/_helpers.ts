/** What the browser tests share: chromium's path and an in-process node on free ports. */
import { parseNodeConfig } from "../../node/config.ts";
import { startNode, type VeriflowNode } from "../../node/node.ts";

/** Debian's chromium (`.ci/run` installs it when missing). */
export const CHROMIUM = "/usr/bin/chromium";
/** Screenshots go here (ignored by git). */
export const OUTPUT_DIR: URL = new URL("../../tmp/test-output/", import.meta.url);

/** A node on free ports, quiet, computing on the main thread (two cores shared in CI). */
export async function startTestNode(
  dataDir: string,
  more: Record<string, unknown>,
): Promise<VeriflowNode> {
  return await startNode(parseNodeConfig({
    dataDir,
    http: { port: 0 },
    heartbeatMs: 0,
    model: { workers: 0 },
    ...more,
  }));
}

/** Fail with the install hint when chromium is missing. */
export async function requireChromium(): Promise<void> {
  await Deno.stat(CHROMIUM).catch(() => {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)`);
  });
}
