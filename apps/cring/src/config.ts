import { type AgentClient, createAgentClient } from '@cring/agent-protocol';
import { type Backend, loadServerKey } from '@cring/charm';
import {
  type AgentAddress,
  agentsFrom,
  backendsFrom,
  issuesOf,
  type RedisSettings,
  redisEnvFields,
  redisFrom,
  type S3Settings,
  s3From,
  sharedEnvFields,
} from '@cring/config';
import { z } from 'zod';

const schema = z.object({
  ...sharedEnvFields,
  ...redisEnvFields,
  CRING_ISSUER: z.string().min(1).optional(),
  CRING_SERVER_KEY_FILE: z.string().min(1).optional(),
  // As the gateway reads them: `cring restore` writes restored files with the same rules.
  CRING_REPLICATION_FACTOR: z.coerce.number().int().positive().default(3),
  CRING_WRITE_QUORUM: z.coerce.number().int().positive().default(2),
});

export class UsageError extends Error {}

export interface CringConfig {
  backends: Backend[];
  agents: Map<string, AgentAddress>;
  redis?: RedisSettings;
  s3?: S3Settings;
  issuer?: string;
  serverKeyFile?: string;
  replicationFactor: number;
  writeQuorum: number;
}

/** The same environment as the other processes; each command says which parts it needs. */
export function loadConfig(env: NodeJS.ProcessEnv): CringConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw new UsageError(issuesOf(parsed.error).join('\n'));
  const e = parsed.data;
  const problems: string[] = [];
  const backends = backendsFrom(e, problems);
  const agents = agentsFrom(e, backends, problems, { all: false });
  const s3 = s3From(e, problems, { required: false });
  const redis = redisFrom(e, problems, { required: false });
  if (e.CRING_WRITE_QUORUM > e.CRING_REPLICATION_FACTOR) {
    problems.push('CRING_WRITE_QUORUM: must not exceed CRING_REPLICATION_FACTOR');
  }
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  return {
    backends,
    agents: new Map(agents.map((a) => [a.name, a])),
    redis,
    s3,
    issuer: e.CRING_ISSUER,
    serverKeyFile: e.CRING_SERVER_KEY_FILE,
    replicationFactor: e.CRING_REPLICATION_FACTOR,
    writeQuorum: e.CRING_WRITE_QUORUM,
  };
}

/** A client for the agent beside a backend (the only way cring touches a backend's data dir). */
export function agentOf(config: CringConfig, name: string): AgentClient {
  const agent = config.agents.get(name);
  if (!agent)
    throw new UsageError(`no agent for backend "${name}": add ${name}=http://host:port to CRING_AGENTS`);
  if (!config.serverKeyFile || !config.issuer) {
    throw new UsageError('talking to agents needs CRING_SERVER_KEY_FILE (the cluster key) and CRING_ISSUER');
  }
  return createAgentClient({
    backend: name,
    url: agent.url,
    key: loadServerKey(config.serverKeyFile),
    issuer: config.issuer,
  });
}
