import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  logFile: string;
  /** Resolves once the process serves; polled until `readyTimeoutMs`. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
}

const running = new Set<ManagedProcess>();
// A crashed launcher or test runner must not leave servers behind.
process.once('exit', () => {
  for (const managed of running) managed.kill('SIGKILL');
});

/** A child process with a log file, a readiness probe, and stop/restart for failure tests. */
export class ManagedProcess {
  readonly spec: ProcessSpec;
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(spec: ProcessSpec) {
    this.spec = spec;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.isRunning) return;
    mkdirSync(dirname(this.spec.logFile), { recursive: true });
    this.log = createWriteStream(this.spec.logFile, { flags: 'a' });
    const child = spawn(this.spec.command, this.spec.args, {
      cwd: this.spec.cwd,
      env: { ...process.env, ...this.spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    running.add(this);
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': output may still be flowing into the log after the process exited.
      child.once('close', () => {
        running.delete(this);
        resolve();
      });
      child.once('error', () => resolve());
    });
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + (this.spec.readyTimeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      if (!this.isRunning) {
        throw new Error(
          `${this.spec.name} exited during start-up (code ${this.child?.exitCode}); see ${this.spec.logFile}`,
        );
      }
      if (await this.spec.ready().catch(() => false)) return;
      await sleep(100);
    }
    throw new Error(
      `${this.spec.name} was not ready after ${this.spec.readyTimeoutMs ?? 30_000} ms; see ${this.spec.logFile}`,
    );
  }

  kill(signal: NodeJS.Signals): void {
    if (this.isRunning) this.child?.kill(signal);
  }

  /** kill -9, returning once the process is gone (a restart right after would find it still running). */
  async killNow(): Promise<void> {
    this.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Safe to call when already stopped. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.isRunning) return;
    this.kill('SIGTERM');
    const grace = new AbortController();
    const killed = await Promise.race([
      this.exited.then(() => false),
      sleep(graceMs, true, { signal: grace.signal }).catch(() => false),
    ]);
    grace.abort(); // do not keep the event loop alive for the rest of the grace period
    if (killed) {
      this.kill('SIGKILL');
      await this.exited;
    }
    await new Promise<void>((resolve) => (this.log ? this.log.end(resolve) : resolve()));
  }

  /** Stops and starts again; `env` changes settings for this and every later start (a ring change). */
  async restart(env?: Record<string, string>): Promise<void> {
    await this.stop();
    if (env) this.spec.env = { ...this.spec.env, ...env };
    await this.start();
  }
}
