/**
 * The methods an app's routes take at a path ({@link allowedMethods}), so that a known path asked
 * with another method is answered 405 with `Allow` rather than 404 (`app.ts`'s not-found
 * handler). Not part of the public API.
 *
 * @module
 */
import { Hono } from "hono";
import type { RouterRoute } from "hono/types";

/** Methods a route can be asked with (HEAD is GET's: Hono answers it with the GET route). */
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/**
 * The methods of `routes` (an app's `routes`, read when called: routes mounted later count)
 * that match `path`, in {@link METHODS} order, `HEAD` after `GET`; empty for a path no route
 * takes. Middleware (`use`, method `ALL`) is not a route here. A probe router is rebuilt when
 * the routes grew (they are only added to), so the cost is paid once per mount.
 */
export function allowedMethods(routes: readonly RouterRoute[], path: string): string[] {
  const probe = probeOf(routes);
  const allowed: string[] = [];
  for (const method of METHODS) {
    if (probe.router.match(method, path)[0].length === 0) continue;
    allowed.push(method);
    if (method === "GET") allowed.push("HEAD");
  }
  return allowed;
}

const probes = new WeakMap<readonly RouterRoute[], { size: number; probe: Hono }>();

function probeOf(routes: readonly RouterRoute[]): Hono {
  const kept = probes.get(routes);
  if (kept !== undefined && kept.size === routes.length) return kept.probe;
  const probe = new Hono();
  const handler = () => new Response(null);
  for (const route of routes) {
    if (route.method !== "ALL") probe.on(route.method, route.path, handler);
  }
  probes.set(routes, { size: routes.length, probe });
  return probe;
}
