import { createTcpPassThrough } from './tcp-pass-through.ts';

// Runs as its own process, like the gateway, so the load generator does not share its event loop.
const port = (name: string) => {
  const value = Number(process.env[name]);
  if (!Number.isInteger(value) || value < 0 || value > 65535)
    throw new Error(`${name} must be a port number`);
  return value;
};
const passThrough = createTcpPassThrough({ host: '127.0.0.1', port: port('BENCH_TARGET_PORT') });
const listening = await passThrough.listen(port('BENCH_LISTEN_PORT'), '127.0.0.1');
console.log(`tcp pass-through ready on ${listening}`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void passThrough.close().finally(() => process.exit(128 + (signal === 'SIGTERM' ? 15 : 2)));
  });
}
