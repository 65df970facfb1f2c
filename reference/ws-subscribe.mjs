// N independent WebSocket subscribers (the `ws` package) to a push server that sends every
// event as one text frame, JSON {"seq": n, "t": <ns>, "payload": "..."}: the reference
// `bench calibrate` measures the harness's own subscribers against on `websocket-push`.
//
//   node ws-subscribe.mjs '{"url": "ws://127.0.0.1:PORT/", "subscribers": 3}'
//
// One connection per subscriber, no compression (ws offers permessage-deflate by default;
// the harness turns it off), pings answered by ws itself. What it prints and counts, and
// its conversation with the runner over stdin and stdout: subscribers.mjs.

import { WebSocket } from 'ws';
import { runSubscribers } from './subscribers.mjs';

const HANDSHAKE_TIMEOUT_MS = 10_000;

function subscribe(url, subscriber, tally) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, {
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    let open = false;
    socket.on('message', (data, isBinary) => {
      // A binary frame is not an event: handed over as no JSON, it counts as an error.
      tally.event(subscriber, isBinary ? '' : data.toString('utf8'));
    });
    // 'error' is followed by 'close'; either one before open means it never subscribed.
    const failed = (error) => {
      if (open) tally.lost(subscriber);
      else reject(error ?? new Error('the connection closed during the handshake'));
    };
    socket.on('error', failed);
    socket.on('close', () => failed(null));
    socket.once('open', () => {
      open = true;
      resolve();
    });
  });
}

await runSubscribers('ws-subscribe', subscribe);
