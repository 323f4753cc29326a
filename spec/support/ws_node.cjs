// WebSocket peer for spec/websocket_spec.lua: node's `ws` (which runs the
// Autobahn suite upstream), found through NODE_PATH.
//   node ws_node.cjs serve READY_FILE PARENT_PID
//     a server on 127.0.0.1 and a free port (written to READY_FILE); paths
//     /echo, /frag ("ab","cd","ef" as one fragmented message, then echo),
//     /close/C/R, /ping ("pong <payload>" once our ping is answered);
//     exits when PARENT_PID is gone.
//   node ws_node.cjs client URL SCENARIO
//     echo | close | server_close, one line per observation.
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const out = (...a) => console.log(a.join(' '));

function serve(ready, parent) {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false) });
  wss.on('connection', (ws, req) => {
    const path = req.url;
    const echo = () => ws.on('message', (m, binary) => ws.send(m, { binary }));
    if (path === '/frag') {
      ws.send('ab', { fin: false });
      ws.send('cd', { fin: false });
      ws.send('ef', { fin: true });
      echo();
    } else if (path.startsWith('/close/')) {
      const [, , code, reason] = path.split('/');
      ws.close(+code, reason);
    } else if (path === '/ping') {
      ws.once('pong', (data) => { ws.send('pong ' + data.toString()); echo(); });
      ws.ping('node');
    } else echo();
  });
  wss.on('listening', () => {
    fs.writeFileSync(ready + '.tmp', JSON.stringify({ node: wss.address().port }));
    fs.renameSync(ready + '.tmp', ready);
  });
  setInterval(() => {
    try { process.kill(parent, 0); } catch (e) { process.exit(0); }
  }, 500);
}

function client(url, scenario) {
  const ws = new WebSocket(url, ['chat'], { perMessageDeflate: false });
  const queue = [];
  let waiting = null;
  ws.on('message', (m, binary) => {
    const v = { data: m, binary };
    if (waiting) { const w = waiting; waiting = null; w(v); } else queue.push(v);
  });
  const next = () => new Promise((r) => (queue.length ? r(queue.shift()) : (waiting = r)));
  ws.on('close', (code, reason) => { out('closed', code, reason.toString()); process.exit(0); });
  ws.on('error', (e) => { out('error', e.message); process.exit(1); });
  ws.on('open', async () => {
    out('protocol', ws.protocol);
    if (scenario === 'echo') {
      ws.send('héllo');
      out('text', (await next()).data.toString());
      ws.send(Buffer.from([0, 1, 255]));
      const b = await next();
      out('binary', b.binary, b.data.toString('hex'));
      ws.send('fr', { fin: false });
      ws.send('ag', { fin: false });
      ws.send('ment', { fin: true });
      out('fragmented', (await next()).data.toString());
      ws.send(Buffer.alloc(300000, 120));
      out('big', (await next()).data.length);
      ws.once('pong', (d) => { out('pong', d.toString()); ws.close(1000, 'done'); });
      ws.ping('p1');
    } else if (scenario === 'close') {
      ws.close(4001, 'client bye');
    } else if (scenario === 'server_close') {
      ws.send('close me');
    }
  });
  setTimeout(() => { out('timeout'); process.exit(2); }, 20000);
}

if (process.argv[2] === 'serve') serve(process.argv[3], +process.argv[4]);
else client(process.argv[3], process.argv[4]);
