// Runs after the whole browser suite (e2e/run): the logs of every server the
// run started — at debug level for Switchboard's crates — hold none of the
// secrets the tests gave them (--auth-secret, --join-secret, --user
// passwords), no invite token (a JWT) and no TURN password (base64 of an
// HMAC-SHA1: 28 characters ending in '=').
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';

const dir = new URL('../artifacts/', import.meta.url);
const read = (name) => (existsSync(new URL(name, dir)) ? readFileSync(new URL(name, dir), 'utf8') : '');

test('no server log of the run contains a secret, a token or a TURN password', () => {
  const logs = `${read('server.log')}\n${read('servers.log')}`;
  // The check must have something to look at: the servers did log.
  assert.ok(logs.includes('STUN/TURN listening'), 'server logs at info level or more were captured');
  const secrets = read('secrets.txt').split('\n').map((s) => s.trim()).filter((s) => s.length >= 4);
  assert.ok(secrets.length >= 1, 'the run recorded the secrets it used');
  for (const s of secrets) {
    assert.ok(!logs.includes(s), `a secret given on the command line appears in a log: ${s.slice(0, 3)}…`);
  }
  const jwt = logs.match(/eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+/);
  assert.equal(jwt, null, `an invite token appears in a log: ${jwt?.[0]?.slice(0, 12)}…`);
  const turnPassword = logs.match(/(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{27}=(?![A-Za-z0-9+/=])/);
  assert.equal(turnPassword, null, `something shaped like a TURN password appears in a log: ${turnPassword?.[0]?.slice(0, 4)}…`);
});
