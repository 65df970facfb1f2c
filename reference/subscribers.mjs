// What every reference subscriber script shares (ws-subscribe.mjs, sse-subscribe.mjs):
// its arguments, its conversation with the runner, and the tally of events.
//
// Arguments: one JSON object, {"url": ..., "subscribers": N}. Over stdin and stdout, one
// line each way at a time: the script connects all N subscribers and prints
// {"ready": N}; the runner writes `start` when its measured window opens and `end` when it
// closes; the script then prints
//   {"events": E, "errors": N, "cpu_s": S, "subscribers": N}
// and exits 0. events: every event the subscribers received in the window. errors, in the
// window: events that are not JSON with an integer `seq`, and events that are not, for
// their subscriber, the next after the last it saw (repeated, out of order, or after a
// gap: events lost on the way); at any time after ready: each subscriber whose connection
// failed or closed (it is not reconnected). cpu_s: this process's CPU time (user and
// system, every thread) from `start` to `end`. Exit 1 with one line on stderr if a
// subscriber cannot connect, or if stdin closes before `end`.

import { createInterface } from 'node:readline';

export function fail(script, message) {
  process.stderr.write(`${script}: ${message}\n`);
  process.exit(1);
}

function readSettings(script, text) {
  let settings;
  try {
    settings = JSON.parse(text ?? '');
  } catch {
    fail(script, 'the one argument must be a JSON object of settings');
  }
  if (typeof settings !== 'object' || settings === null) {
    fail(script, 'the one argument must be a JSON object of settings');
  }
  if (typeof settings.url !== 'string') fail(script, 'url must be a string');
  if (!(Number.isSafeInteger(settings.subscribers) && settings.subscribers > 0)) {
    fail(script, 'subscribers must be an integer above 0');
  }
  return settings;
}

// Events and errors per subscriber, counted only while the window is open; the order
// check runs all the time, so that the first event of the window is judged too.
export class Tally {
  constructor(subscribers) {
    this.lastSeq = new Array(subscribers).fill(0); // 0: none seen yet (seq starts at 1)
    this.failed = new Array(subscribers).fill(false);
    this.counting = false;
    this.events = 0;
    this.errors = 0;
  }

  event(subscriber, text) {
    let seq;
    try {
      seq = JSON.parse(text).seq;
    } catch {
      seq = undefined;
    }
    if (this.counting) this.events += 1;
    if (!Number.isSafeInteger(seq)) {
      if (this.counting) this.errors += 1;
      return;
    }
    const last = this.lastSeq[subscriber];
    // A subscriber joins mid-stream: its first event is whichever is published next.
    const next = last === 0 || seq === last + 1;
    if (seq > last) this.lastSeq[subscriber] = seq;
    if (!next && this.counting) this.errors += 1;
  }

  // The subscriber's connection failed or closed: one error, once.
  lost(subscriber) {
    if (this.failed[subscriber]) return;
    this.failed[subscriber] = true;
    this.errors += 1;
  }
}

// Runs the script: `connect(url, subscriber, tally)` opens one subscriber and resolves
// once it is subscribed (rejects if it cannot be).
export async function runSubscribers(script, connect) {
  const settings = readSettings(script, process.argv[2]);
  const tally = new Tally(settings.subscribers);
  try {
    await Promise.all(
      Array.from({ length: settings.subscribers }, (_, index) =>
        connect(settings.url, index, tally),
      ),
    );
  } catch (error) {
    fail(script, `cannot subscribe at ${settings.url}: ${error.message}`);
  }
  process.stdout.write(`${JSON.stringify({ ready: settings.subscribers })}\n`);
  let cpuAtStart = null;
  let ended = false;
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = line.trim();
    if (command === 'start') {
      cpuAtStart = process.cpuUsage();
      tally.counting = true;
    } else if (command === 'end' && !ended) {
      ended = true;
      const cpu = process.cpuUsage(cpuAtStart ?? undefined);
      tally.counting = false;
      const report = {
        events: tally.events,
        errors: tally.errors,
        cpu_s: cpuAtStart === null ? 0 : (cpu.user + cpu.system) / 1e6,
        subscribers: settings.subscribers,
      };
      // Exit without closing the connections one by one: the process ending closes them.
      process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
    }
  });
  lines.on('close', () => {
    if (!ended) fail(script, 'stdin closed before `end`');
  });
}
