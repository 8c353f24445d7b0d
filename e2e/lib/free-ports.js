// Prints two free loopback ports: one for HTTP (TCP), one for STUN/TURN (free
// on both TCP and UDP). Used by ./run before starting the server.
import net from 'node:net';
import dgram from 'node:dgram';

function tcpPort(port = 0) {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function udpFree(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

const http = await tcpPort();
let turn = 0;
for (let i = 0; i < 50 && !turn; i++) {
  const p = await tcpPort();
  if (p !== http && (await udpFree(p))) turn = p;
}
if (!turn) process.exit(1);
console.log(`${http} ${turn}`);
