import { join } from 'node:path';
import type { Cluster } from '@cring/local-cluster';
import { type CharmClient, charmClient } from './charm-cli.ts';

/** A charm CLI with its own identity (data dir) aimed at the gateway. */
export function gatewayClient(cluster: Cluster, identity: string): CharmClient {
  return charmClient({
    charmBin: cluster.charmBin,
    dataDir: join(cluster.topology().runDir, 'clients', identity),
    sshPort: cluster.gatewayPorts.sshPort,
    httpPort: cluster.gatewayPorts.httpPort,
  });
}

/** The same identity (data dir) aimed straight at one backend, bypassing the gateway. */
export function directClient(cluster: Cluster, identity: string, backendIndex: number): CharmClient {
  const backend = cluster.backends[backendIndex];
  if (!backend) throw new Error(`no backend #${backendIndex}`);
  return charmClient({
    charmBin: cluster.charmBin,
    dataDir: join(cluster.topology().runDir, 'clients', identity),
    sshPort: backend.info.sshPort,
    httpPort: backend.info.httpPort,
  });
}
