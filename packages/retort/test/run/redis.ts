/**
 * A Redis server of the test's own (Debian's redis-server, which the set-up installs): a free
 * loopback port, its files in a temporary folder, nothing saved to disk, stopped by its pid.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

export interface TestRedis {
  url: string;
  stop(): void;
}

export async function startRedis(dir: string): Promise<TestRedis> {
  const port = await freePort();
  const pidfile = join(dir, 'redis.pid');
  const r = spawnSync(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'yes',
      '--pidfile',
      pidfile,
    ],
    { encoding: 'utf8' },
  );
  if (r.error || r.status !== 0)
    throw new Error(
      `redis-server did not start (${r.error?.message ?? r.stderr}); the set-up (scripts/ensure-setup.sh) installs Debian's redis-server`,
    );
  // Wait for the pid file and a PING answer.
  for (let i = 0; i < 100; i++) {
    const ping = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (existsSync(pidfile) && ping.stdout.trim() === 'PONG') break;
    await new Promise((w) => setTimeout(w, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    stop() {
      if (!existsSync(pidfile)) return;
      const pid = Number(readFileSync(pidfile, 'utf8').trim());
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    },
  };
}
