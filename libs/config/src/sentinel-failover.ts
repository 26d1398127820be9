// How every Redis connection follows a Sentinel failover at once, even while its primary is frozen rather than
// dead (its socket then never breaks).
//
// ioredis' own failover detector (`failoverDetector: true`) has a race: an announcement that comes while the client
// asks a sentinel for the primary (as it does again and again while the old primary is dead) ends the client for
// good. Every command then fails with "Connection is closed." and it never reconnects: measured, 3 to 4 of 8
// clients at each failover with sentinels 20 to 300 ms away; CI lost a gateway's Redis that way. Here each
// connection to a primary listens for the announcement on every sentinel, and an announcement only closes that
// connection: the client reconnects as after any close, and asks the sentinels again.
import { Redis, type SentinelConnectionOptions, SentinelConnector } from 'ioredis';

/** What every sentinel publishes once it has promoted a replica: `<master name> <old ip> <old port> <new ip> <new port>`. */
const SWITCH_MASTER = '+switch-master';

type Stream = Awaited<ReturnType<SentinelConnector['connect']>>;

export class FailoverFollowingConnector extends SentinelConnector {
  // ioredis builds a `Connector` from the client's whole options.
  constructor(options: unknown) {
    super(options as SentinelConnectionOptions);
  }

  override async connect(eventEmitter: Parameters<SentinelConnector['connect']>[0]): Promise<Stream> {
    const stream = await super.connect(eventEmitter);
    if (!stream.destroyed) this.closeOnFailover(stream);
    return stream;
  }

  /** Subscribes on every sentinel for as long as this connection lives; a failover of our primary closes it. */
  private closeOnFailover(stream: Stream): void {
    const options = this.options;
    const watchers = (options.sentinels ?? []).map((sentinel) => {
      const watcher = new Redis({
        host: sentinel.host ?? '127.0.0.1',
        port: sentinel.port ?? 26379,
        username: options.sentinelUsername,
        password: options.sentinelPassword,
        tls: options.sentinelTLS,
        connectTimeout: options.connectTimeout,
        // A sentinel down now may be back before the primary fails: keep trying (reconnects resubscribe).
        retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
        maxRetriesPerRequest: null,
      });
      watcher.on('error', () => {}); // an unreachable sentinel: the others announce the failover too
      watcher.on('message', (channel: string, message: string) => {
        if (channel === SWITCH_MASTER && message.split(' ')[0] === options.name) stream.destroy();
      });
      watcher.subscribe(SWITCH_MASTER).catch(() => {});
      return watcher;
    });
    stream.once('close', () => {
      for (const watcher of watchers) watcher.disconnect();
    });
  }
}
