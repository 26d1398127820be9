import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster } from '@cring/local-cluster';

/** An interactive program in a detached tmux session: the charm TUIs need a terminal. */
function tmuxSession(command: string[], env: Record<string, string>) {
  const name = `cring-${randomBytes(4).toString('hex')}`;
  const envArgs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
  // `sleep` keeps the pane (and its last screen) after the program exits.
  const shell = `env ${envArgs.map((a) => `'${a}'`).join(' ')} ${command.map((c) => `'${c}'`).join(' ')}; sleep 60`;
  execFileSync('tmux', ['new-session', '-d', '-s', name, '-x', '120', '-y', '40', shell]);
  return {
    screen: () => execFileSync('tmux', ['capture-pane', '-p', '-t', name], { encoding: 'utf8' }),
    keys: (...keys: string[]) => execFileSync('tmux', ['send-keys', '-t', name, ...keys]),
    async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = this.screen().match(pattern);
        if (match) return match;
        if (Date.now() > deadline)
          throw new Error(`tmux ${name}: no ${pattern} on screen:\n${this.screen()}`);
        await sleep(100);
      }
    },
    kill: () => {
      try {
        execFileSync('tmux', ['kill-session', '-t', name]);
      } catch {
        // already gone
      }
    },
  };
}

/**
 * Links two devices with the real `charm link` TUI, through the gateway: `generator` shows a code, `requester`
 * enters it, the generator approves. Both data dirs must already hold their keys.
 */
export async function linkDevices(
  cluster: Cluster,
  generatorDataDir: string,
  requesterDataDir: string,
): Promise<void> {
  const env = (dataDir: string) => ({
    CHARM_HOST: '127.0.0.1',
    CHARM_SSH_PORT: String(cluster.gatewayPorts.sshPort),
    CHARM_HTTP_PORT: String(cluster.gatewayPorts.httpPort),
    CHARM_DATA_DIR: dataDir,
    HOME: dataDir,
    TERM: 'xterm-256color',
  });
  const generator = tmuxSession([cluster.charmBin, 'link'], env(generatorDataDir));
  let requester: ReturnType<typeof tmuxSession> | undefined;
  try {
    const [, code] = await generator.waitFor(/charm link ([A-Z0-9]{6})/);
    requester = tmuxSession([cluster.charmBin, 'link', code as string], env(requesterDataDir));
    await generator.waitFor(/Link this device\?/);
    generator.keys('Enter'); // "Yes" is selected
    await generator.waitFor(/Linked!/);
    await requester.waitFor(/Linked!/);
  } finally {
    generator.kill();
    requester?.kill();
  }
}
