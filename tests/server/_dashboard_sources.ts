/**
 * A dashboard's sources (`server/dashboard_routes.ts`) for the server tests: a node with nothing
 * to show, whose sources a test replaces one by one.
 *
 * @module
 */
import type { DashboardSources } from "../../server/dashboard_routes.ts";

/**
 * The sources of a node with an empty tree, no lifecycle events, and no peers, validator or
 * storage to report; `more` replaces any of them (a counting `tree`, a slow `peers`).
 */
export function quietSources(more: Partial<DashboardSources> = {}): DashboardSources {
  return {
    node: { key: "00".repeat(32), version: "test" },
    tree: () => ({}),
    onLifecycle: () => () => {},
    peers: () => Promise.resolve(undefined),
    validator: () => Promise.resolve(undefined),
    storage: () => Promise.resolve(undefined),
    ...more,
  };
}
