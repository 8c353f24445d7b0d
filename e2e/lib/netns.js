// A network namespace joined to this host by a veth pair, for tests that
// put one browser behind a link of their own (rate limits with tc). The
// test makes it, uses it and removes it; all traffic stays between the two
// ends of the pair. Needs root (CI runs as root).
import { execFileSync } from 'node:child_process';

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
const tc = (...args) => execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Whether this process may make namespaces. */
export function canMakeNamespaces() {
  return process.getuid?.() === 0;
}

/**
 * Makes namespace `sbe2e-<tag>-<pid>`: `hostIp` on this side, `nsIp` inside
 * (a /30 of 10.203.0.0/16 picked from the pid), loopback up in it.
 */
export function makeLink(tag) {
  const ns = `sbe2e-${tag}-${process.pid}`;
  const hostDev = `sbh${process.pid % 100000}`;
  const nsDev = `sbn${process.pid % 100000}`;
  const block = (process.pid % 16000) * 4;
  const prefix = `10.203.${Math.floor(block / 256)}`;
  const hostIp = `${prefix}.${(block % 256) + 1}`;
  const nsIp = `${prefix}.${(block % 256) + 2}`;
  ip('netns', 'add', ns);
  try {
    ip('link', 'add', hostDev, 'type', 'veth', 'peer', 'name', nsDev);
    ip('link', 'set', nsDev, 'netns', ns);
    ip('addr', 'add', `${hostIp}/30`, 'dev', hostDev);
    ip('link', 'set', hostDev, 'up');
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsDev);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', nsDev, 'up');
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  } catch (e) {
    removeLink(ns, hostDev);
    throw e;
  }
  return {
    ns,
    hostIp,
    nsIp,
    /** Limits both directions to `kbit` kbit/s (token bucket, 200 ms of queue). */
    limit(kbit) {
      const shape = [`rate`, `${kbit}kbit`, 'burst', '6kb', 'latency', '200ms'];
      tc('qdisc', 'replace', 'dev', hostDev, 'root', 'tbf', ...shape);
      ip('netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', nsDev, 'root', 'tbf', ...shape);
    },
    /** Lifts the limit. */
    lift() {
      tc('qdisc', 'del', 'dev', hostDev, 'root');
      ip('netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', nsDev, 'root');
    },
    remove() {
      removeLink(ns, hostDev);
    },
  };
}

function removeLink(ns, hostDev) {
  try { ip('link', 'del', hostDev); } catch {}
  try { ip('netns', 'del', ns); } catch {}
}
