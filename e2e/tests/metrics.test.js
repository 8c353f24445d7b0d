// Prometheus metrics during a real relayed call: allocations ≥ 1 and
// relayed bytes growing while two Chromiums talk through our TURN; and on a
// server with the default peer policy, a CreatePermission to 127.0.0.1
// (coturn's turnutils_uclient) is refused and the policy-drop counter rises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { launchChromium } from '../lib/browser.js';
import { roomId, joinRoom, waitConnected, peerStats } from '../lib/call.js';
import { startServer } from '../lib/server.js';

/** The samples of `name` in a Prometheus text page, as {labels: value}. */
function samples(page, name) {
  const out = {};
  for (const line of page.split('\n')) {
    const m = line.match(/^([a-z_]+)(\{[^}]*\})? (\S+)$/);
    if (m && m[1] === name) out[m[2] ?? ''] = Number(m[3]);
  }
  return out;
}
const total = (page, name) => Object.values(samples(page, name)).reduce((a, b) => a + b, 0);

async function scrape(server) {
  const url = server.metricsUrl();
  assert.ok(url, `metrics URL in the banner:\n${server.output()}`);
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/plain; version=0\.0\.4/);
  return res.text();
}

test('metrics during a relayed call: allocations, relayed bytes growing, signaling gauges', async () => {
  const server = await startServer([]);
  const base = `http://127.0.0.1:${server.httpPort}`;
  const a = await launchChromium();
  const b = await launchChromium();
  try {
    const room = roomId('metrics');
    await joinRoom(a.page, room, 'Ann', '?relay=1', base);
    await joinRoom(b.page, room, 'Bob', '?relay=1', base);
    await waitConnected(a.page, 1);
    await waitConnected(b.page, 1);
    assert.equal(Object.values(await peerStats(a.page))[0].localType, 'relay');
    // Snapshots are published about once a second.
    await new Promise((r) => setTimeout(r, 2500));
    const first = await scrape(server);
    assert.ok(total(first, 'switchboard_turn_allocations') >= 1, 'allocations gauge ≥ 1');
    const bytes1 = total(first, 'switchboard_turn_relayed_bytes_total');
    const packets = samples(first, 'switchboard_turn_relayed_packets_total');
    assert.ok(packets['{direction="client_to_peer"}'] > 0 && packets['{direction="peer_to_client"}'] > 0,
      `both directions counted: ${JSON.stringify(packets)}`);
    assert.equal(total(first, 'switchboard_signaling_peers'), 2);
    assert.equal(total(first, 'switchboard_signaling_rooms'), 1);
    assert.ok(total(first, 'switchboard_signaling_relayed_messages_total') > 0);
    assert.ok(samples(first, 'switchboard_turn_requests_total')['{method="allocate",result="success"}'] >= 2,
      'successful Allocates are counted by method and result');
    await new Promise((r) => setTimeout(r, 3000));
    const second = await scrape(server);
    const bytes2 = total(second, 'switchboard_turn_relayed_bytes_total');
    assert.ok(bytes2 > bytes1, `relayed bytes grow during the call: ${bytes1} -> ${bytes2}`);
    // No user names or addresses in any label.
    assert.doesNotMatch(second, /127\.0\.0\.1|username|Ann|Bob/);
  } finally {
    await a.close();
    await b.close();
    await server.stop(5000);
  }
});

test('a CreatePermission to 127.0.0.1 is refused and counted as a policy drop', async () => {
  const server = await startServer(['--user', 'metrics:hunter2pw'], undefined, null, { loopbackPeers: false });
  try {
    const before = samples(await scrape(server), 'switchboard_turn_dropped_total')['{reason="peer_policy"}'] ?? 0;
    const run = spawnSync('turnutils_uclient', ['-u', 'metrics', '-w', 'hunter2pw', '-e', '127.0.0.1', '-r', '9',
      '-p', String(server.turnPort), '-n', '1', '-m', '1', '127.0.0.1'], { encoding: 'utf8', timeout: 20_000 });
    const out = `${run.stdout}${run.stderr}`;
    assert.match(out, /403/, `the permission is refused with 403:\n${out}`);
    let after = before;
    for (let i = 0; i < 30 && after <= before; i++) {
      await new Promise((r) => setTimeout(r, 200));
      after = samples(await scrape(server), 'switchboard_turn_dropped_total')['{reason="peer_policy"}'] ?? 0;
    }
    assert.ok(after > before, `peer_policy drops rose: ${before} -> ${after}`);
    const page = await scrape(server);
    // uclient asks with ChannelBind (which installs the permission) unless told otherwise.
    const requests = samples(page, 'switchboard_turn_requests_total');
    const refused = (requests['{method="create_permission",result="403"}'] ?? 0) + (requests['{method="channel_bind",result="403"}'] ?? 0);
    assert.ok(refused >= 1, `the 403 is counted by method and result: ${JSON.stringify(requests)}`);
  } finally {
    await server.stop(5000);
  }
});
