import { copyFileSync, mkdirSync } from 'node:fs';
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
    caFile: cluster.tls?.caFile,
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
    caFile: cluster.tls?.caFile,
  });
}

/** A second device of the same user: a fresh data dir holding a copy of the identity's SSH key. */
export function sameKeyClient(cluster: Cluster, identity: string, device: string): CharmClient {
  const runDir = cluster.topology().runDir;
  const from = join(runDir, 'clients', identity, '127.0.0.1');
  const to = join(runDir, 'clients', `${identity}@${device}`, '127.0.0.1');
  mkdirSync(to, { recursive: true });
  for (const file of ['charm_ed25519', 'charm_ed25519.pub']) copyFileSync(join(from, file), join(to, file));
  return gatewayClient(cluster, `${identity}@${device}`);
}

/** A new user through the gateway: created over SSH on the account primary, synced by the product. */
export async function newUser(
  cluster: Cluster,
  identity: string,
): Promise<{ charm: CharmClient; charmId: string }> {
  const charm = gatewayClient(cluster, identity);
  const charmId = (await charm.run(['id'])).stdout.trim();
  return { charm, charmId };
}
