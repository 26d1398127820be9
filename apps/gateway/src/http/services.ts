import type { BackupStore } from '@cring/backup-store';
import type { JobQueues } from '@cring/jobs';
import type { Manifest } from '@cring/manifest';
import type { Logger } from '@cring/service-runtime';
import type { AccountPresence } from '../accounts/account-presence.ts';
import type { TokenVerifier } from '../auth/token-verifier.ts';
import type { BackendHttp } from '../backends/backend-http.ts';
import type { SocketReads } from '../backends/socket-reads.ts';
import type { GatewayConfig } from '../config.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { ReadBalancer } from '../reads/read-balancer.ts';
import type { Placement } from '../replication/placement.ts';
import type { RefusalRecords } from '../replication/refusal-records.ts';
import type { RemainingCopies } from '../replication/remaining-copies.ts';
import type { UnresolvedWrites } from '../replication/unresolved-writes.ts';
import type { SpoolBudget } from '../spool/spool-budget.ts';

/** What the routes depend on; built by main.ts, replaced by small fakes in unit tests. */
export interface GatewayServices {
  config: Pick<
    GatewayConfig,
    | 'writeQuorum'
    | 'replicationFactor'
    | 'spool'
    | 'lockWaitMs'
    | 'limits'
    | 'backupReadTimeoutMs'
    | 'readAhead'
    | 'remainingCopies'
  >;
  logger: Logger;
  placement: Placement;
  /** Picks which interchangeable holder serves a read (fewest requests in flight first). */
  readBalancer: ReadBalancer;
  reportBackendFailure: (backend: string, err: unknown) => void;
  manifest: Manifest;
  queues: JobQueues;
  backendHttp: BackendHttp;
  /** File reads (GET/HEAD /v1/fs) over their own keep-alive pool, bodies relayed as socket slices. */
  socketReads: Pick<SocketReads, 'request' | 'stream'>;
  verifier: TokenVerifier;
  accountPresence: Pick<AccountPresence, 'ensure' | 'refresh'>;
  /** The S3 backup, for reads while no owner of a user is reachable (read-only mode); absent when not set up. */
  backupStore?: BackupStore;
  metrics: GatewayMetrics;
  /** Upload bytes all requests together may hold in the spool. */
  spoolBudget: SpoolBudget;
  /** Failed writes not rolled back yet, for reads while Redis is unreachable. */
  unresolvedWrites: UnresolvedWrites;
  /** Refused writes put back on record, retried while Redis does not answer. */
  refusalRecords: RefusalRecords;
  /** A small acknowledged write's copies to the owners its quorum left out and to S3, sent by the gateway. */
  remainingCopies: RemainingCopies;
}
