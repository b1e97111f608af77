/**
 * Who is connected to whom in a simulated network: a sparse random graph, as peer discovery
 * leaves it (each node dials a handful of others it happened to find). Every flood — receipts,
 * verdicts, fraud proofs — travels over these edges only, so its cost is a function of them.
 *
 * The graph is a ring (so it is connected whatever the draw) plus random chords until the mean
 * degree reaches the target. {@link hopDistances} gives how many hops a flood from one node needs
 * to reach each other node: the floor on its time when every hop has a latency.
 *
 * @example
 * ```ts
 * import { hopDistances, randomTopology } from "./topology.ts";
 * const topology = randomTopology({ nodes: 100, degree: 8, seed: 1 });
 * const hops = hopDistances(topology, 0);
 * console.log(topology.edges.length, Math.max(...hops)); // 400 edges, a few hops
 * ```
 *
 * @module
 */
import { randomIndex, seededRandom } from "./_random.ts";

/** Options of {@link randomTopology}. */
export interface TopologyOptions {
  /** Nodes (at least 2). */
  nodes: number;
  /** Mean number of peers per node (at least 2: the ring; capped at nodes − 1). */
  degree: number;
  /** Seed of the draw. */
  seed: number;
}

/** An undirected graph over nodes 0 … n − 1. */
export interface Topology {
  /** Number of nodes. */
  nodes: number;
  /** Each edge once, `[a, b]` with `a < b`. */
  edges: [number, number][];
  /** The peers of each node. */
  neighbours: number[][];
}

/** A connected random graph with mean degree `degree` (see the module doc). */
export function randomTopology(options: TopologyOptions): Topology {
  const { nodes, seed } = options;
  if (!Number.isInteger(nodes) || nodes < 2) throw new RangeError("nodes must be an integer ≥ 2");
  const degree = Math.min(Math.max(2, options.degree), nodes - 1);
  const random = seededRandom(seed);
  const neighbours: Set<number>[] = Array.from({ length: nodes }, () => new Set());
  const edges: [number, number][] = [];
  const link = (a: number, b: number): boolean => {
    if (a === b || neighbours[a].has(b)) return false;
    neighbours[a].add(b);
    neighbours[b].add(a);
    edges.push(a < b ? [a, b] : [b, a]);
    return true;
  };
  for (let i = 0; i < nodes; i++) link(i, (i + 1) % nodes);
  const target = Math.round((nodes * degree) / 2);
  // Random chords; a draw that repeats an edge is drawn again (the graph is sparse, so rarely).
  while (edges.length < target) link(randomIndex(random, nodes), randomIndex(random, nodes));
  return { nodes, edges, neighbours: neighbours.map((s) => [...s]) };
}

/** Hops from `from` to every node (breadth-first); `Infinity` for a node it cannot reach. */
export function hopDistances(topology: Topology, from: number): number[] {
  const hops = new Array<number>(topology.nodes).fill(Infinity);
  hops[from] = 0;
  const queue = [from];
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head];
    for (const next of topology.neighbours[node]) {
      if (hops[next] === Infinity) {
        hops[next] = hops[node] + 1;
        queue.push(next);
      }
    }
  }
  return hops;
}
