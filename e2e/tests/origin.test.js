// Web origins (issue 18): a page of another origin (a second local HTTP
// server, another port) cannot join through Switchboard's WebSocket; with
// its origin in --allowed-origin it can. The shipped app keeps working
// behind a reverse proxy that rewrites the Host header when --public-host
// names the host the browser uses (over plain http here; https is covered
// by the TLS tests, http by every call test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { launchChromium } from '../lib/browser.js';
import { roomId } from '../lib/call.js';
import { startServer } from '../lib/server.js';

/** A tiny web server on a free loopback port serving one page; resolves with {port, close}. */
function servePage(html) {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    srv.listen(0, '127.0.0.1', () => resolve({ port: srv.address().port, close: () => srv.close() }));
  });
}

/**
 * A reverse proxy on a free port forwarding HTTP and WebSocket upgrades to
 * `target`, replacing the Host header with the target's address (as a proxy
 * that does not pass Host on does).
 */
function hostRewritingProxy(target) {
  const host = `127.0.0.1:${target}`;
  const srv = http.createServer((req, res) => {
    const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: { ...req.headers, host } },
      (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  srv.on('upgrade', (req, socket, head) => {
    const up = net.connect(target, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const [k, v] = [req.rawHeaders[i], req.rawHeaders[i + 1]];
        lines.push(`${k}: ${k.toLowerCase() === 'host' ? host : v}`);
      }
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      up.write(head);
      socket.pipe(up).pipe(socket);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ port: srv.address().port, close: () => srv.close() })));
}

/** Opens a WebSocket to `wsUrl` from `page` and sends a join; resolves with the first answer or the failure. */
function joinFrom(page, wsUrl) {
  return page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'join', v: 1, room: 'origin-test', name: 'Embedded' }));
    ws.onmessage = (e) => { resolve(JSON.parse(e.data).type); ws.close(); };
    ws.onerror = () => resolve('socket-error');
    setTimeout(() => resolve('timeout'), 10_000);
  }), wsUrl);
}

test('a foreign origin cannot open the signaling WebSocket unless allowed', async () => {
  const page = await servePage('<!doctype html><title>Another site</title><p>embedding page</p>');
  const foreign = `http://127.0.0.1:${page.port}`;
  const plain = await startServer([]);
  const allowing = await startServer(['--allowed-origin', foreign]);
  const b = await launchChromium();
  try {
    await b.page.goto(`${foreign}/`);
    assert.equal(await joinFrom(b.page, `ws://127.0.0.1:${plain.httpPort}/ws`), 'socket-error');
    assert.equal(await joinFrom(b.page, `ws://127.0.0.1:${allowing.httpPort}/ws`), 'joined');
    // /api/ice: readable cross-origin only where allowed.
    const read = (port) => b.page.evaluate((u) => fetch(u).then((r) => r.status, () => 'blocked'), `http://127.0.0.1:${port}/api/ice`);
    assert.equal(await read(plain.httpPort), 'blocked');
    assert.equal(await read(allowing.httpPort), 200);
    // The app's own pages still join on their own origin.
    await b.page.goto(`http://127.0.0.1:${plain.httpPort}/`);
    assert.equal(await joinFrom(b.page, `ws://127.0.0.1:${plain.httpPort}/ws`), 'joined');
  } finally {
    await b.close();
    page.close();
    await plain.stop(2000);
    await allowing.stop(2000);
  }
});

test('behind a proxy that rewrites Host, the app joins when --public-host names the host', async () => {
  const name = 'call.switchboard.test';
  const b = await launchChromium({ args: [`--host-resolver-rules=MAP ${name} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1`] });
  const servers = [];
  try {
    for (const [flags, expected] of [[[], 'refused'], [['--public-host', name], 'joined']]) {
      const server = await startServer(flags);
      servers.push(server);
      const proxy = await hostRewritingProxy(server.httpPort);
      try {
        await b.page.goto(`http://${name}:${proxy.port}/r/${roomId('proxied')}`);
        await b.page.fill('#name', 'Proxied');
        await b.page.click('#join');
        await b.page.waitForFunction(() => !document.querySelector('#call').hidden
          || document.querySelector('#lobby-error').textContent !== '', null, { timeout: 20_000 });
        const joined = await b.page.isVisible('#call');
        assert.equal(joined ? 'joined' : 'refused', expected, `flags ${flags.join(' ')}`);
        if (joined) {
          const ice = await b.page.evaluate(() => window.switchboard.state.iceServers[0].urls[0]);
          assert.ok(ice.includes(name), ice);
        }
      } finally {
        proxy.close();
      }
    }
  } finally {
    await b.close();
    for (const s of servers) await s.stop(2000);
  }
});
