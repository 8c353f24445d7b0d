// Invite tokens for the access tests: HS256 JWTs like `switchboard invite`
// makes (claims room, exp, optional name and admin), minted here when a test
// needs one the subcommand cannot make (an expired one, another secret).
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A token for `room` signed with `secret`, expiring `ttlS` seconds from now (negative: already expired). */
export function mintToken(secret, { room, ttlS = 3600, name, admin } = {}) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = { room, exp: Math.floor(Date.now() / 1000) + ttlS };
  if (name) claims.name = name;
  if (admin) claims.admin = true;
  const payload = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

/**
 * `switchboard invite ROOM --url BASE [extra]` with the join secret in the
 * environment; the printed link, or null when it printed none.
 */
export function inviteLink(secret, room, base, extra = []) {
  const bin = process.env.SWITCHBOARD_BIN;
  const r = spawnSync(bin, ['invite', room, '--url', base, ...extra], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...process.env, SWITCHBOARD_JOIN_SECRET: secret },
  });
  const link = `${r.stdout ?? ''}`.match(/\S+\/r\/\S+#t=\S+/)?.[0];
  return r.status === 0 && link ? link : null;
}
