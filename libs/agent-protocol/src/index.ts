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
  diskSpaceWire,
  encodeApplyResult,
  encodeSnapshot,
  type ModTimeRequest,
  PayloadError,
} from './payloads.ts';
export { AGENT_AUDIENCE, mintAgentToken, verifyAgentToken } from './tokens.ts';
