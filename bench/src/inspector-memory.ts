/** process.memoryUsage() of another Node process, in bytes. */
export interface NodeMemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/**
 * Reads a Node process's own memory figures over its inspector (started with `--inspect=127.0.0.1:<port>`):
 * what of its RSS is V8 heap, what is Buffer memory. Evaluates only `process.memoryUsage()` (and `gc()` when
 * the process runs with --expose-gc).
 */
export async function connectInspector(port: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot open ${url}`)), { once: true });
  });
  let nextId = 0;
  const evaluate = (expression: string) =>
    new Promise<unknown>((resolve, reject) => {
      const id = ++nextId;
      const onMessage = (event: MessageEvent) => {
        const message = JSON.parse(String(event.data)) as {
          id?: number;
          result?: { result?: { value?: unknown }; exceptionDetails?: { text: string } };
        };
        if (message.id !== id) return;
        socket.removeEventListener('message', onMessage);
        if (message.result?.exceptionDetails) reject(new Error(message.result.exceptionDetails.text));
        else resolve(message.result?.result?.value);
      };
      socket.addEventListener('message', onMessage);
      socket.send(
        JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression, returnByValue: true } }),
      );
    });
  return {
    async memoryUsage(): Promise<NodeMemoryUsage> {
      return JSON.parse(String(await evaluate('JSON.stringify(process.memoryUsage())'))) as NodeMemoryUsage;
    },
    async collectGarbage(): Promise<void> {
      await evaluate('gc()');
    },
    close: () => socket.close(),
  };
}
