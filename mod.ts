/**
 * Veriflow: a node for a decentralized AI network that stores data across peers, streams model
 * inference token by token, and proves to sampling validators that the work was really done.
 *
 * This module re-exports the public API; it holds no logic.
 *
 * @example Run a node in-process
 * ```ts ignore
 * import { parseNodeConfig, startNode } from "@veriflow/node";
 *
 * // Its own data directory and ports, so it runs beside a `deno task start` node (whose are
 * // ./.veriflow, 8080 and 7700). It rejects with a typed error (HttpListenError,
 * // DataDirLockedError, ConfigError, ModelLoadError …) and releases what it took; once up,
 * // `await using` shuts it down at the end of the block, however the block ends.
 * await using node = await startNode(
 *   parseNodeConfig({
 *     dataDir: "./.veriflow/embedded",
 *     http: { port: 0 },
 *     network: { listen: { port: 0 } },
 *   }),
 *   { log: console.log },
 * );
 * console.log(node.url, node.tree());
 * ```
 *
 * @example Check a receipt you were given
 * ```ts ignore
 * // The package's `./receipt` entry point needs only `--allow-env`; this module loads
 * // onnxruntime's native addon at import (`--allow-read --allow-ffi` too).
 * import { verifyReceipt } from "@veriflow/node/receipt";
 *
 * // `receipt` as received (a `done` message's, or a final SSE chunk's `veriflow_receipt`); `job`,
 * // the TextJob you asked for, binds it to your prompt, nonce and params (docs/API.md says how to
 * // rebuild it); `output`, the text you were sent. Signature and binding only: that the model
 * // computed the text is what validators check (`validateReceipt`, with the model and proof data).
 * const check = verifyReceipt(receipt, { job, output: text });
 * if (!check.ok) throw new Error(check.reason);
 * ```
 *
 * @module
 */

// Shared foundations
export * from "./protocols/errors.ts";
export * from "./protocols/cbor.ts";
export * from "./protocols/hash.ts";
export * from "./protocols/identity.ts";
export {
  boundJobId,
  DEFAULT_GENERATION_PARAMS,
  GENERATION_LIMITS,
  type GenerationLimits,
  type GenerationParams,
  type Job,
  JOB_PRECISIONS,
  jobBodyHash,
  jobBytes,
  jobId,
  type JobPrecision,
  MAX_NETWORK_JOB_BYTES,
  MIN_SAMPLING_TEMPERATURE,
  type TensorData,
  type TensorJob,
  type TextJob,
} from "./protocols/job.ts";
export * from "./protocols/cid.ts";
export * from "./protocols/job_input.ts";

// Actor runtime
export * from "./actors/actor.ts";
export * from "./actors/actor_ref.ts";
export * from "./actors/actor_system.ts";
export * from "./actors/supervisor.ts";
export * from "./actors/mailbox.ts";
export * from "./actors/events.ts";
export * from "./actors/errors.ts";
export * from "./actors/registry.ts";

// Wire protocol
export * from "./protocols/envelope.ts";
export * from "./protocols/envelope_signing.ts";
export * from "./protocols/message_registry.ts";
export * from "./protocols/messages.ts";
export * from "./protocols/protocol_errors.ts";
export * from "./protocols/cbor_guard.ts";
export * from "./protocols/connection.ts";
export * from "./protocols/memory_duplex.ts";
export * from "./protocols/tcp_transport.ts";
export * from "./protocols/session_handshake.ts";
export * from "./protocols/inference_messages.ts";
export * from "./protocols/peer_goodbye.ts";
export {
  signStakePledge,
  STAKE_PLEDGE_VERSION,
  type StakePledge,
  stakePledgeSigningBytes,
  verifyStakePledge,
} from "./protocols/stake_pledge.ts";
export * from "./streams/length_prefixed_stream.ts";
export * from "./streams/cbor_stream.ts";

// Inference
export * from "./inference/text_model.ts";
export type { GraphOptimizationLevel, SessionOptions } from "./inference/_session.ts";
export * from "./inference/tensor_model.ts";
export * from "./inference/model_registry.ts";
export * from "./inference/model_identity.ts";
export * from "./inference/model_health.ts";
export * from "./inference/model_builder.ts";
export * from "./inference/builtin_model.ts";
export * from "./inference/sampler.ts";
export * from "./inference/top_logprobs.ts";
export * from "./inference/counter_rng.ts";
export * from "./inference/text_tokenizer.ts";
export * from "./inference/byte_tokenizer.ts";
export * from "./inference/errors.ts";
export {
  emptyInferenceStats,
  type FinishReason as JobFinishReason,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type JobSummary,
  type JobTimings,
  type JobUsage,
  type ModelCatalog,
  type ServedModelInfo,
  type StreamedToken,
  type SubmitOptions,
} from "./inference/inference_port.ts";
export * from "./inference/local_port.ts";
export * from "./inference/queue_position.ts";
export * from "./inference/remote_port.ts";
export * from "./inference/serve_inference.ts";
export {
  InferenceStreamError,
  ResumeUnsupportedError,
  StartTimeoutError,
  WorkerStalledError,
  WorkerTooSlowError,
} from "./inference/remote_errors.ts";
export { InvalidResumeError, ResumeMismatchError } from "./inference/resumed_generation.ts";
export {
  type CancelJob,
  DEFAULT_CONCURRENCY,
  DEFAULT_QUEUE_LIMIT,
  DEFAULT_UNREAD_TOKEN_BYTES,
  emptyInferenceCounters,
  type GetInferenceStats,
  InferenceActor,
  type InferenceActorOptions,
  type InferenceCounters,
  type InferenceMessage,
  type JobEnded,
  type SeatsChanged,
  SLOW_READER_CANCEL_GRACE_MS,
  SLOW_READER_GRACE_MS,
  SlowReaderError,
  type SubmitJob,
  submitJob,
  type SubmitJobOptions,
  type SubmitReply,
  type TensorJobHandle,
  UnreadTokenBudget,
  type UnreadTokenHolder,
  type UnreadTokenStats,
} from "./actors/inference_actor.ts";
export * from "./actors/inference_errors.ts";
export type { JobOutcome, JobRunnerMessage, TextJobHandle } from "./actors/inference_job.ts";
export type * from "./actors/inference_models.ts";

// Client APIs
export * from "./server/serve.ts";
export * from "./server/metrics_registry.ts";
export * from "./server/http_errors.ts";
export { EDGE_DEFAULTS, type EdgeConfig } from "./server/edge_config.ts";
export { TRUSTED_PROXY_HEADERS, type TrustedProxyHeader } from "./server/forwarded_for.ts";
export { METRICS_ACCESS, type MetricsAccess } from "./server/metrics_access.ts";
export type * from "./server/stream_protocol.ts";
// The OpenAI-style streamed chunks as the `/v1` routes write them, Veriflow's fields included.
export type {
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  ChatLogprobs,
  ChatTokenLogprob,
  CompletionChunk,
  CompletionChunkChoice,
  CompletionLogprobs,
  OpenAiFinishReason,
  OpenAiStreamChunk,
  VeriflowChunkFields,
} from "./server/openai_shapes.ts";
export * from "./server/chat_template.ts";
export * from "./client/stream_client.ts";

// Proof of Inference
export {
  inputHashOf,
  MalformedReceiptError,
  parseReceipt,
  type Receipt,
  RECEIPT_VERSION,
  type ReceiptCheck,
  type ReceiptCommitment,
  receiptContradiction,
  type ReceiptEnd,
  type ReceiptFailure,
  receiptId,
  receiptSigningBytes,
  type ReceiptTimings,
  signReceipt,
  tensorOutputHash,
  textOutputHash,
  type UnsignedReceipt,
  verifyReceipt,
  type VerifyReceiptOptions,
} from "./protocols/receipt.ts";
export {
  ASSIGNMENT_VERSION,
  assignmentSigningBytes,
  type JobAssignment,
  signAssignment,
  verifyAssignment,
} from "./protocols/assignment.ts";
export {
  MalformedVerdictError,
  parseVerdict,
  signVerdict,
  type UnsignedVerdict,
  type Verdict,
  VERDICT_VERSION,
  verdictId,
  type VerdictOutcome,
  verdictSigningBytes,
  verifyVerdict,
} from "./protocols/verdict.ts";
export {
  type CitedPosition,
  FRAUD_PROOF_VERSION,
  type FraudChunk,
  type FraudKind,
  type FraudProof,
  fraudProofHash,
  fraudProofSigningBytes,
  fraudProofSize,
  MalformedFraudProofError,
  parseFraudProof,
  signFraudProof,
  type UnsignedFraudProof,
  verifyFraudProofSignature,
} from "./protocols/fraud_proof.ts";
export * from "./proof/prover.ts";
export * from "./proof/validation.ts";
export * from "./proof/fraud_check.ts";
export {
  type SignedHead,
  type SignedStream,
  type StreamClaim,
  StreamSigner,
  streamSigningBytes,
  StreamVerifier,
  verifyStreamClaim,
} from "./protocols/stream_commitment.ts";
export {
  signStreamProof,
  STREAM_PROOF_VERSION,
  type StreamProof,
  streamProofHash,
  streamProofSigningBytes,
  verifyStreamProofSignature,
} from "./protocols/stream_proof.ts";
export * from "./proof/stream_check.ts";
export {
  type ChunkOpening,
  CommitmentMismatchError,
  commitmentRoot,
  DEFAULT_COMMITMENT_CHUNK_SIZE,
  openChunks,
  type ProofData,
  verifyOpenings,
} from "./proof/commitment.ts";
export type { ProofModel, ProofTensorModel } from "./proof/_common.ts";
export * from "./proof/fingerprint.ts";
export * from "./proof/sampling_check.ts";
export * from "./proof/end_choices.ts";
export * from "./proof/steering.ts";
export * from "./proof/calibration.ts";
export * from "./proof/calibrate_model.ts";
export * from "./proof/challenge.ts";
export * from "./proof/ledger.ts";
export * from "./proof/ledger_verify.ts";
export * from "./proof/ledger_repair.ts";
export {
  type ServedProof,
  servedProofSigningBytes,
  signServedProof,
  verifyServedProof,
} from "./proof/served_proof.ts";
export * from "./proof/economics.ts";
export * from "./proof/private_input.ts";
export { ProofStoreError } from "./proof/proof_store.ts";
export * from "./actors/prover_actor.ts";
// The once-at-a-time asks the health and dashboard probes share (`proofStoreConditions` takes one).
export { PendingAsks } from "./actors/pending_asks.ts";
export * from "./actors/validator_actor.ts";
export * from "./proof/challenge_timing.ts";

// Storage
export * from "./storage/chunk_store.ts";
export * from "./storage/pending_put.ts";
export * from "./storage/file_store.ts";
export {
  type DagEntry,
  type DirectoryEntry,
  DirectoryTooLargeError,
  type LeafCheck,
  RangeTooLargeError,
} from "./storage/unixfs.ts";
export type { CarScope } from "./storage/car.ts";
export type { GatewayReadOptions, GatewayStorage } from "./storage/gateway_port.ts";
export type { ShareRecord } from "./storage/share_links.ts";
export * from "./storage/block_store.ts";
export * from "./storage/private_tier.ts";
export * from "./storage/replicated_store.ts";
export * from "./storage/rendezvous.ts";
export * from "./storage/storage_peer.ts";
export * from "./storage/connection_storage_peer.ts";
export * from "./storage/audit.ts";
export type { AuditRoundReport } from "./storage/audit_round.ts";
export * from "./storage/errors.ts";
export {
  decodeManifest,
  encodeManifest,
  type Manifest,
  MANIFEST_NODE_TYPE,
  MANIFEST_TYPE,
  MANIFEST_VERSION,
  type ManifestBranch,
  manifestCid,
  type ManifestNode,
  type PrivateManifest,
  type PublicManifest,
  type SealedFileInfo,
  type StorageTier,
} from "./protocols/manifest.ts";
export {
  registerStorageMessages,
  STORAGE_MESSAGES,
  storageRegistry,
} from "./protocols/storage_messages.ts";
export * from "./streams/chunker_stream.ts";
export * from "./actors/storage_actor.ts";
export * from "./actors/storage_actor_messages.ts";
export * from "./actors/storage_actor_peer.ts";

// The node
export * from "./node/config.ts";
export * from "./node/node.ts";
export {
  formatPeerAddress,
  InvalidPeerAddressError,
  parsePeerAddress,
  type PeerAddress,
} from "./network/peer_address.ts";
export * from "./node/node_identity.ts";
export * from "./node/data_dir_lock.ts";
// What startNode refuses a port or an API keys file with.
export { HttpListenError } from "./node/http_listener.ts";
export { PeerListenError } from "./network/peer_listener.ts";
// What `VeriflowNode.peers()` lists.
export type { PeerInfo } from "./network/network_actor.ts";
export type { PeerLoad, PeerStorage } from "./protocols/peer_hello.ts";
export { ApiKeysFileError } from "./server/api_keys.ts";

// Training (docs/TRAINING.md): corpus, local AdamW, int8 deltas, receipts, DiLoCo rounds, the
// proof of training work, and `cli.ts train`'s runner.
export { TrainingError } from "./training/training_error.ts";
export type { TrainingBackend } from "./training/tf_backend.ts";
export {
  batchIndices,
  type CorpusDocument,
  type CorpusSplit,
  loadBrownCorpus,
  type Sample,
  sampleAt,
  sampleCount,
  splitCorpus,
  type TextShard,
} from "./training/brown_corpus.ts";
export {
  gptModelBytesFromWeights,
  gptModelId,
  gptModelIdOfOnnx,
  type GptWeights,
  seededGptWeights,
  type TrainedModelFiles,
  weightsFromOnnx,
  type WeightTensor,
  writeTrainedModel,
} from "./training/gpt_weights.ts";
export { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "./training/hyper_params.ts";
export {
  evaluateLoss,
  type LocalTrainingOptions,
  type LocalTrainingResult,
  trainLocal,
} from "./training/local_trainer.ts";
export {
  commitShard,
  type ShardCommitment,
  type StateDistance,
  type TrainingState,
} from "./training/training_state.ts";
export * from "./training/int8_delta.ts";
export * from "./training/outer_step.ts";
export {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
  type TrainingReceiptCheck,
  type TrainingReceiptFailure,
  trainingReceiptId,
  type UnsignedTrainingReceipt,
  verifyTrainingReceipt,
  type VerifyTrainingReceiptOptions,
} from "./training/training_receipt.ts";
export * from "./training/training_round.ts";
export {
  drawTrainingChallenge,
  type DrawTrainingChallengeOptions,
  type TrainingChallenge,
  trainingChallengeId,
  verifyTrainingChallenge,
} from "./training/training_challenge.ts";
export {
  ChallengeMismatchError,
  openChallengedSteps,
  type OpenedSample,
  OpenedStates,
  type SealedStepOpenings,
  type StepOpening,
  type StepOpenings,
  type TrainingTrace,
  type UnsealResult,
} from "./training/step_opening.ts";
export {
  checkStepOpenings,
  type CheckStepOpeningsOptions,
  type StepOpeningsCheck,
  type StepOpeningsFailure,
} from "./training/step_check.ts";
export type {
  CheckStepOptions,
  OpeningsPlaintextCheck,
  StepClaimReason,
  StepMeasure,
  VerifiedStep,
} from "./training/step_verify.ts";
export {
  IN_PROCESS_STEP_RERUN,
  type OpenedAnswer,
  type StepRerun,
  type StepRerunResult,
} from "./training/step_rerun.ts";
export {
  checkTrainingFraudProof,
  type CheckTrainingFraudProofOptions,
  type SignedOpeningsPlaintext,
  type TrainingFraudCheckResult,
  type TrainingFraudProof,
  trainingFraudProofHash,
  type TrainingFraudReason,
} from "./training/training_fraud_proof.ts";
export type { TrainingFraudProofBody } from "./protocols/training_messages.ts";
export type { TrainFunction } from "./training/trainer_engine.ts";
export {
  type RoundRecord as TrainRoundRecord,
  type TrainEvent,
  trainModel,
  type TrainRunOptions,
  type TrainRunResult,
} from "./training/train_run.ts";
