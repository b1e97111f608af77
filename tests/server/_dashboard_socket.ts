/**
 * A dashboard WebSocket for the server tests: its messages as they come, its close code and
 * reason once closed, and a wait for the first message that matches.
 *
 * @module
 */
import { eventually } from "../_helpers/wait.ts";

/** A message of the dashboard socket, the fields the tests read. */
export type DashboardSocketMessage = {
  type: string;
  code?: string;
  access?: string;
  retryAfterS?: number;
};

/** A dashboard socket to `url` (the node's HTTP URL), open; rejects if it does not open. */
export async function openDashboardSocket(url: string) {
  const ws = new WebSocket(url.replace("http", "ws") + "/dashboard/live");
  const messages: DashboardSocketMessage[] = [];
  const closed = Promise.withResolvers<{ code: number; reason: string }>();
  ws.onmessage = (e) => messages.push(JSON.parse(e.data));
  ws.onclose = (e) => closed.resolve({ code: e.code, reason: e.reason });
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("no socket"));
  });
  const next = (predicate: (m: DashboardSocketMessage) => boolean, what: string) =>
    eventually(() => messages.find(predicate), what);
  return { ws, messages, closed: closed.promise, next };
}
