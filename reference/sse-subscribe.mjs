// N independent Server-Sent Events subscribers (the `eventsource` package's EventSource,
// on Node's own fetch) to a push server's `text/event-stream`, each event `id: n` and
// `data: {"seq": n, "t": <ns>, "payload": "..."}`: the reference `bench calibrate`
// measures the harness's own subscribers against on `sse`.
//
//   node sse-subscribe.mjs '{"url": "http://127.0.0.1:PORT/events", "subscribers": 3}'
//
// One connection per subscriber. An EventSource reconnects on its own after a failure
// (WHATWG HTML 9.2: it fires `error`, then retries after the server's `retry:`); here a
// failure is an error and the subscriber is closed at once, never reconnected, so that
// resuming with Last-Event-ID cannot hide a broken stream. What it prints and counts, and
// its conversation with the runner over stdin and stdout: subscribers.mjs.

import { EventSource } from 'eventsource';
import { runSubscribers } from './subscribers.mjs';

function subscribe(url, subscriber, tally) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(url);
    let open = false;
    // Only `message` events: the server's other types (a `reset` after a resume) never
    // reach a subscriber that does not resume.
    source.addEventListener('message', (event) => tally.event(subscriber, event.data));
    source.addEventListener('error', (event) => {
      source.close(); // before its reconnect timer fires: see above
      if (open) tally.lost(subscriber);
      else reject(new Error(event.message ?? 'the event stream failed'));
    });
    // Open once the answer's headers are in: the server subscribes a client before it
    // sends them, so nothing published from now on is missed.
    source.addEventListener('open', () => {
      open = true;
      resolve();
    });
  });
}

await runSubscribers('sse-subscribe', subscribe);
