// An open-loop WebSocket request/response load client, independent of the harness: the
// reference `bench calibrate` measures the harness's own generator against on the
// `websocket` pattern, as wrk and h2load are for HTTP/1.1 and gRPC.
//
//   node ws-load.mjs '{"url": "ws://127.0.0.1:PORT/", "connections": 1,
//     "streams_per_connection": 8, "rate_per_s": 1000, "warmup_s": 1, "duration_s": 3,
//     "user_id": 1, "expected_result": "<the user record, as the server encodes it>"}'
//
// It sends `{"id":N,"op":"get_user","params":{"id":U}}` (encoded per request, as every
// client in the harness does) at `rate_per_s` in all, on one schedule, over `connections`
// WebSocket connections (the `ws` package, no compression), each carrying at most
// `streams_per_connection` requests in flight. Every answer is matched to its request by
// id and must be, byte for byte, `{"id":N,"result":` + expected_result + `}`.
//
// Measured over the window that follows the warm-up, as the harness's generator measures
// it: requests due in the window and answered right (latency from the actual send to the
// answer's arrival, so as wrk and h2load report it, not from the intended send), and this
// process's CPU time (user and system, all its threads) from the window's opening to its
// closing. Then it waits (at most
// DRAIN_LIMIT_MS) for answers still in flight and prints one JSON line:
//   {"requests", "errors", "timeouts", "elapsed_s", "rate_per_s", "cpu_s", "p50_us", "mean_us"}
// errors: wrong answers and requests lost with their connection (both for requests due in
// the window), answers to no request in flight, each connection that failed or closed,
// and requests due in the window that could not be sent before it closed (every stream
// busy, or no connection left). timeouts: requests due in the window still unanswered
// after the drain. Exit 0; exit 1 with one line on stderr if it cannot connect.

import { WebSocket } from 'ws';

const HANDSHAKE_TIMEOUT_MS = 10_000;
const DRAIN_LIMIT_MS = 5_000;
const NS_PER_MS = 1e6;
const NS_PER_S = 1e9;
// Node's timers count whole milliseconds (libuv's loop clock), as wrk's do: a send is due
// when its slot is less than half a millisecond away, and a timer is armed for the wait
// rounded to the nearest millisecond, which is wrk's rule in the harness's pacing script
// (bench/loadtools.py). A timer that fires is the moment its slot was armed for, even if
// the fine clock says it is a fraction of a millisecond early (the loop clock truncates).
const HALF_MS_NS = NS_PER_MS / 2;
const ANSWER_HEAD = Buffer.from('{"id":');
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const COMMA = 0x2c;

// process.hrtime is CLOCK_MONOTONIC in nanoseconds; as offsets from the start they stay
// exact in a double (2^53 ns is 104 days), so the schedule's sums are plain numbers.
const ORIGIN_NS = process.hrtime.bigint();
const nowNs = () => Number(process.hrtime.bigint() - ORIGIN_NS);

function fail(message) {
  process.stderr.write(`ws-load: ${message}\n`);
  process.exit(1);
}

function readSettings(text) {
  let settings;
  try {
    settings = JSON.parse(text ?? '');
  } catch {
    fail('the one argument must be a JSON object of settings');
  }
  if (typeof settings !== 'object' || settings === null) {
    fail('the one argument must be a JSON object of settings');
  }
  const positive = ['connections', 'streams_per_connection', 'rate_per_s', 'duration_s'];
  for (const name of positive) {
    if (!(typeof settings[name] === 'number' && settings[name] > 0)) {
      fail(`${name} must be a number above 0`);
    }
  }
  if (!(typeof settings.warmup_s === 'number' && settings.warmup_s >= 0)) {
    fail('warmup_s must be a number, 0 or more');
  }
  if (!Number.isSafeInteger(settings.user_id)) fail('user_id must be an integer');
  if (typeof settings.url !== 'string') fail('url must be a string');
  if (typeof settings.expected_result !== 'string') fail('expected_result must be a string');
  return settings;
}

function openConnection(url) {
  return new Promise((resolve, reject) => {
    // No permessage-deflate (ws offers it by default): the harness turns it off too.
    const socket = new WebSocket(url, {
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    // Left in place once open (rejecting a settled promise does nothing), so that an
    // error before the load loop watches the socket is never an unhandled 'error' event.
    socket.on('error', (error) => reject(error));
    socket.once('open', () => resolve(socket));
  });
}

// The id an answer is for: read from its first bytes when it starts as the server writes
// it (`{"id":N,`, N in canonical decimal, so the head is then byte for byte `{"id":N`);
// otherwise the answer is decoded in full to find it. null when it names none.
function answerId(data) {
  const head = ANSWER_HEAD.length;
  if (data.length > head && data.compare(ANSWER_HEAD, 0, head, 0, head) === 0) {
    let id = 0;
    let at = head;
    const first = data[at];
    if (first > DIGIT_0 && first <= DIGIT_9) {
      while (at < data.length && data[at] >= DIGIT_0 && data[at] <= DIGIT_9) {
        id = id * 10 + (data[at] - DIGIT_0);
        at += 1;
      }
      if (data[at] === COMMA && Number.isSafeInteger(id)) return { id, headLength: at };
    }
  }
  try {
    const reply = JSON.parse(data.toString('utf8'));
    return Number.isSafeInteger(reply?.id) ? { id: reply.id, headLength: -1 } : null;
  } catch {
    return null;
  }
}

class OpenLoop {
  constructor(settings, sockets) {
    this.settings = settings;
    this.request = { op: 'get_user', params: { id: settings.user_id } };
    this.expectedTail = Buffer.from(`,"result":${settings.expected_result}}`, 'utf8');
    this.maxInFlight = settings.streams_per_connection;
    this.intervalNs = NS_PER_S / settings.rate_per_s;
    this.connections = sockets.map((socket) => this.watch(socket));
    this.cursor = 0; // where the search for a free stream starts: round robin
    this.nextId = 1;
    this.nextSlot = 0;
    this.timer = null;
    this.timerSlot = -1;
    this.sending = true;
    this.windowRequests = 0; // due in the window and sent
    this.windowInFlight = 0;
    this.requests = 0;
    this.errors = 0;
    this.onDrained = null;
  }

  watch(socket) {
    const connection = { socket, inFlight: new Map(), alive: true };
    socket.on('message', (data, isBinary) => this.answered(connection, data, isBinary));
    const lost = () => this.lost(connection);
    socket.on('error', lost);
    socket.on('close', lost);
    if (socket.readyState !== WebSocket.OPEN) this.lost(connection); // gone before watched
    return connection;
  }

  run() {
    const { warmup_s: warmupS, duration_s: durationS } = this.settings;
    this.startNs = nowNs();
    this.windowStartNs = this.startNs + warmupS * NS_PER_S;
    this.windowEndNs = this.windowStartNs + durationS * NS_PER_S;
    this.firstWindowSlot = this.firstSlotFrom(this.windowStartNs);
    this.slots = this.firstSlotFrom(this.windowEndNs); // the schedule ends with the window
    this.latenciesNs = new Float64Array(this.slots - this.firstWindowSlot);
    this.at(this.windowStartNs, () => this.openWindow());
    this.pump(-1);
    return new Promise((resolve) => {
      this.onDrained = resolve;
    });
  }

  dueNs(slot) {
    return this.startNs + slot * this.intervalNs;
  }

  // The first slot due at or after `whenNs`, by the very sums that time the sends.
  firstSlotFrom(whenNs) {
    let slot = Math.max(0, Math.floor((whenNs - this.startNs) / this.intervalNs) - 1);
    while (this.dueNs(slot) < whenNs) slot += 1;
    return slot;
  }

  // Runs `action` once the fine clock reaches `whenNs`, on millisecond timers.
  at(whenNs, action) {
    const waitNs = whenNs - nowNs();
    if (waitNs <= HALF_MS_NS) {
      action();
      return;
    }
    setTimeout(() => this.at(whenNs, action), Math.round(waitNs / NS_PER_MS));
  }

  openWindow() {
    this.cpuAtStart = process.cpuUsage();
    this.measuredFromNs = nowNs();
    this.at(this.windowEndNs, () => this.closeWindow());
  }

  closeWindow() {
    this.pump(-1); // what is due by now goes out first
    const cpu = process.cpuUsage(this.cpuAtStart);
    this.cpuS = (cpu.user + cpu.system) / 1e6;
    this.elapsedS = (nowNs() - this.measuredFromNs) / NS_PER_S;
    this.sending = false;
    clearTimeout(this.timer);
    const dueInWindow = this.slots - this.firstWindowSlot;
    this.errors += dueInWindow - this.windowRequests; // due, but never sent
    this.drainTimer = setTimeout(() => this.drained(), DRAIN_LIMIT_MS);
    this.checkDrained();
  }

  checkDrained() {
    if (!this.sending && this.windowInFlight === 0) this.drained();
  }

  drained() {
    clearTimeout(this.drainTimer);
    const resolve = this.onDrained;
    this.onDrained = null;
    if (resolve) resolve(this.report());
  }

  // Sends every slot that is due, each on a connection with a stream free; arms a timer
  // for the next one. A slot already past goes out at once: none is skipped.
  pump(firedSlot) {
    while (this.sending && this.nextSlot < this.slots) {
      const dueNs = this.dueNs(this.nextSlot);
      const waitNs = dueNs - nowNs();
      if (waitNs > HALF_MS_NS && this.nextSlot !== firedSlot) {
        this.arm(this.nextSlot, waitNs);
        return;
      }
      const connection = this.freeConnection();
      if (connection === null) return; // the next answer frees a stream and pumps again
      this.send(connection, this.nextSlot >= this.firstWindowSlot);
      this.nextSlot += 1;
    }
  }

  arm(slot, waitNs) {
    if (this.timer !== null) {
      if (this.timerSlot === slot) return;
      clearTimeout(this.timer);
    }
    this.timerSlot = slot;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pump(slot);
    }, Math.round(waitNs / NS_PER_MS));
  }

  freeConnection() {
    const count = this.connections.length;
    for (let tried = 0; tried < count; tried += 1) {
      const connection = this.connections[this.cursor];
      this.cursor = (this.cursor + 1) % count;
      if (connection.alive && connection.inFlight.size < this.maxInFlight) return connection;
    }
    return null;
  }

  send(connection, inWindow) {
    const id = this.nextId;
    this.nextId += 1;
    const message = JSON.stringify({ id, ...this.request });
    const sentNs = nowNs();
    connection.inFlight.set(id, { sentNs, inWindow });
    if (inWindow) {
      this.windowRequests += 1;
      this.windowInFlight += 1;
    }
    connection.socket.send(message);
  }

  answered(connection, data, isBinary) {
    const arrivedNs = nowNs();
    const found = isBinary ? null : answerId(data);
    const request = found === null ? undefined : connection.inFlight.get(found.id);
    if (request === undefined) {
      this.errors += 1; // an answer to nothing in flight
      return;
    }
    connection.inFlight.delete(found.id);
    if (request.inWindow) {
      this.windowInFlight -= 1;
      const right =
        found.headLength > 0 && this.expectedTail.compare(data, found.headLength) === 0;
      if (right) {
        this.latenciesNs[this.requests] = arrivedNs - request.sentNs;
        this.requests += 1;
      } else {
        this.errors += 1;
      }
    }
    this.pump(-1);
    this.checkDrained();
  }

  lost(connection) {
    if (!connection.alive) return; // 'error' is followed by 'close': one failure
    connection.alive = false;
    this.errors += 1;
    for (const request of connection.inFlight.values()) {
      if (request.inWindow) {
        this.errors += 1;
        this.windowInFlight -= 1;
      }
    }
    connection.inFlight.clear();
    this.checkDrained();
  }

  report() {
    const timeouts = this.windowInFlight;
    const latencies = this.latenciesNs.subarray(0, this.requests).sort();
    let p50Us = null;
    let meanUs = null;
    if (latencies.length > 0) {
      p50Us = round1(latencies[Math.ceil(latencies.length / 2) - 1] / 1e3);
      meanUs = round1(latencies.reduce((sum, value) => sum + value, 0) / latencies.length / 1e3);
    }
    return {
      requests: this.requests,
      errors: this.errors,
      timeouts,
      elapsed_s: round6(this.elapsedS),
      rate_per_s: round1(this.elapsedS > 0 ? this.requests / this.elapsedS : 0),
      cpu_s: round6(this.cpuS),
      p50_us: p50Us,
      mean_us: meanUs,
    };
  }

  close() {
    for (const connection of this.connections) {
      connection.alive = false; // closing now is ours, not a failure
      connection.socket.terminate();
    }
  }
}

const round1 = (value) => Math.round(value * 10) / 10;
const round6 = (value) => Math.round(value * 1e6) / 1e6;

const settings = readSettings(process.argv[2]);
let sockets;
try {
  sockets = await Promise.all(
    Array.from({ length: settings.connections }, () => openConnection(settings.url)),
  );
} catch (error) {
  fail(`cannot connect to ${settings.url}: ${error.message}`);
}
const loop = new OpenLoop(settings, sockets);
const report = await loop.run();
loop.close();
process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
