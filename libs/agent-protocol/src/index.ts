export {
  type AgentClient,
  type AgentClientOptions,
  AgentRefusedError,
  AgentUnavailableError,
  createAgentClient,
  SHA256_HEADER,
} from './client.ts';
export {
  type DiskSpace,
  decodeApplyPlan,
  decodeModTimeRequest,
  decodeModTimesRequest,
  diskSpaceWire,
  encodeApplyResult,
  encodeSnapshot,
  MAX_MOD_TIMES_PER_CALL,
  type ModTimeRequest,
  type ModTimeResult,
  PayloadError,
} from './payloads.ts';
export { AGENT_AUDIENCE, mintAgentToken, verifyAgentToken } from './tokens.ts';
