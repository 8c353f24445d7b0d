// Measuring helpers shared by the big-file test and bench/peer.mjs.
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';

/** Writes `mib` MiB of random bytes to `path`, returning their SHA-256. */
export async function writeRandomFile(path, mib) {
  const f = await open(path, 'w');
  const h = createHash('sha256');
  try {
    for (let i = 0; i < mib; i++) {
      const chunk = randomBytes(1024 * 1024);
      h.update(chunk);
      await f.write(chunk);
    }
  } finally {
    await f.close();
  }
  return h.digest('hex');
}

/**
 * Summed resident memory (bytes) of one browser: the process started with
 * `--user-data-dir=<profile>` and all its descendants (renderers, GPU,
 * network and storage services).
 */
export async function browserRss(profile) {
  const procs = new Map(); // pid -> {ppid, rss, cmd}
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
      procs.set(Number(pid), {
        ppid: Number(status.match(/PPid:\s+(\d+)/)?.[1] ?? 0),
        rss: Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024,
        cmd,
      });
    } catch { /* exited */ }
  }
  const roots = [...procs].filter(([, p]) => p.cmd.includes(`--user-data-dir=${profile}`) && !p.cmd.includes('--type=')).map(([pid]) => pid);
  const seen = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of procs) if (!seen.has(pid) && seen.has(p.ppid)) { seen.add(pid); grew = true; }
  }
  let total = 0;
  for (const pid of seen) total += procs.get(pid)?.rss ?? 0;
  return total;
}
