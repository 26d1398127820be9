import type { Cluster } from '@cring/local-cluster';

/** The gateway's metrics from its admin port, as text ('' while they do not answer). */
export function gatewayMetrics(cluster: Cluster): Promise<string> {
  return fetch(`http://127.0.0.1:${cluster.gatewayPorts.adminPort}/metrics`).then(
    (r) => r.text(),
    () => '',
  );
}

/** One of the gateway's own gauges from its admin port (undefined while its metrics do not answer). */
export async function gatewayGauge(cluster: Cluster, name: string): Promise<number | undefined> {
  const metrics = await gatewayMetrics(cluster);
  const value = new RegExp(`^${name}(?:{[^}]*})? (\\d+(?:\\.\\d+)?)$`, 'm').exec(metrics)?.[1];
  return value === undefined ? undefined : Number(value);
}

/**
 * Waits until the gateway has connected to Redis again since `reconnectsBefore` (its
 * `cring_redis_reconnects_total` read before Redis went away). A write sent before that is a 503 "cannot reach
 * Redis" that opens no intent, which is not the refusal a flow means to make. The gauge alone is not enough: the
 * gateway may not have seen the old connection close yet.
 */
export async function waitForGatewayRedis(cluster: Cluster, reconnectsBefore: number, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reconnects = await gatewayGauge(cluster, 'cring_redis_reconnects_total');
    const connected = await gatewayGauge(cluster, 'cring_redis_connected');
    if (reconnects !== undefined && reconnects > reconnectsBefore && connected === 1) return;
    if (Date.now() > deadline)
      throw new Error(`the gateway did not reconnect to Redis within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The gateway's count of Redis reconnections so far, for `waitForGatewayRedis`. */
export async function gatewayRedisReconnects(cluster: Cluster): Promise<number> {
  const reconnects = await gatewayGauge(cluster, 'cring_redis_reconnects_total');
  if (reconnects === undefined) throw new Error("the gateway's metrics do not answer");
  return reconnects;
}
