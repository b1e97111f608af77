/**
 * The registry names of the node's actors: {@link NODE_ACTORS} for the roles every default node
 * runs, {@link TRAINING_ACTORS} for the training ones. `node.ts` re-exports both (they are
 * public); they live here so that `node.ts` and the modules it composes (`_node_children.ts`,
 * `_training_children.ts`, `_http_api.ts`) name the same actors without those modules importing
 * `node.ts`, which imports them.
 *
 * @module
 */
/** Names of the node's actors in the registry. */
export const NODE_ACTORS = {
  supervisor: "node/sup",
  storage: "node/storage",
  prover: "node/prover",
  validator: "node/validator",
  inference: "node/inference",
  network: "node/network",
} as const;

/**
 * Names of the training actors, started only on a node that trains, coordinates or validates
 * training (docs/TRAINING.md, "The network round"): apart from {@link NODE_ACTORS}, which every
 * default node runs.
 */
export const TRAINING_ACTORS = {
  validator: "node/training-validator",
  trainer: "node/trainer",
  coordinator: "node/training-coordinator",
} as const;
