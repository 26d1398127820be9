/** The parts of a V8 `.cpuprofile` (what `node --cpu-prof` writes) that a summary needs. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a sample's time goes, by what the code does. Checked in order; native frames inherit their caller's. */
const CATEGORIES: { name: string; test: (fn: string, url: string) => boolean }[] = [
  { name: 'idle (waiting for sockets, disk, timers)', test: (fn) => fn === '(idle)' },
  { name: 'garbage collection', test: (fn) => fn === '(garbage collector)' },
  { name: 'V8/native outside JS', test: (fn) => fn === '(program)' || fn === '(root)' },
  { name: 'sha256', test: (_fn, url) => url.includes('internal/crypto/hash') },
  { name: 'multipart scan', test: (_fn, url) => url.includes('multipart-scanner') },
  { name: 'JWT verify', test: (_fn, url) => url.includes('/jwt.ts') || url.includes('internal/crypto/sig') },
  { name: 'file I/O (spool)', test: (_fn, url) => url.startsWith('node:fs') || url.includes('internal/fs/') },
  {
    name: 'Redis + BullMQ client',
    test: (_fn, url) => /\/(ioredis|bullmq|msgpackr|@cring\/manifest|libs\/manifest|libs\/jobs)\//.test(url),
  },
  { name: 'fastify', test: (_fn, url) => /\/(fastify|find-my-way|avvio|@fastify)\//.test(url) },
  { name: 'logging', test: (_fn, url) => /\/(pino|pino-std-serializers|sonic-boom)\//.test(url) },
  {
    name: 'HTTP + streams (node core)',
    test: (_fn, url) =>
      /^node:(_http|http|https|net|stream|internal\/(http|streams|stream_base_commons|net|js_stream_socket))/.test(
        url,
      ),
  },
  { name: 'gateway code', test: (_fn, url) => url.includes('/apps/gateway/') },
];
const OTHER = 'other JS';

export interface ProfileSummary {
  totalMs: number;
  /** Milliseconds per category, largest first. */
  categories: { name: string; ms: number; share: number }[];
  /** Functions with the most self time (native frames named by their own name), largest first. */
  topFunctions: { name: string; where: string; ms: number; share: number }[];
}

const basename = (url: string) =>
  url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/(?=[^/]+\/src\/)/, '');

/**
 * Self time per category and per function of a CPU profile, optionally only of the samples taken within
 * `window` (microseconds on the profile's clock, CLOCK_MONOTONIC: `process.hrtime.bigint() / 1000n` of any
 * process on the same machine), so start-up and shut-down stay out.
 */
export function summarizeCpuProfile(
  profile: CpuProfile,
  options: { top?: number; window?: { fromUs: number; toUs: number } } = {},
): ProfileSummary {
  const top = options.top ?? 15;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const categoryOf = new Map<number, string>();
  const categorize = (id: number): string => {
    const cached = categoryOf.get(id);
    if (cached) return cached;
    const node = byId.get(id);
    let category = OTHER;
    if (node) {
      const { functionName, url } = node.callFrame;
      const match = CATEGORIES.find((c) => c.test(functionName, url));
      const parent = parentOf.get(id);
      // A native frame (no url) does its caller's work: `update` under hash.js is hashing, `writev` under net is HTTP.
      if (match) category = match.name;
      else if (url === '' && parent !== undefined) category = categorize(parent);
    }
    categoryOf.set(id, category);
    return category;
  };

  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time from sample i-1 to sample i: it belongs to sample i-1.
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (options.window && (at < options.window.fromUs || at > options.window.toUs)) continue;
    const id = profile.samples[i] as number;
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const share = (us: number) => (totalUs > 0 ? us / totalUs : 0);

  const categories = new Map<string, number>();
  const functions = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const category = categorize(id);
    categories.set(category, (categories.get(category) ?? 0) + us);
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    const where = frame.url ? `${basename(frame.url)}:${frame.lineNumber + 1}` : `(native, ${category})`;
    const key = `${frame.functionName}@${where}`;
    const entry = functions.get(key) ?? { name: frame.functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  return {
    totalMs: totalUs / 1000,
    categories: [...categories]
      .map(([name, us]) => ({ name, ms: us / 1000, share: share(us) }))
      .sort((a, b) => b.ms - a.ms),
    topFunctions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, share: share(f.us) })),
  };
}
