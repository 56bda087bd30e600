// WebSocket client: connects with a fresh access token, reconnects with exponential
// backoff and jitter, keeps the connection alive and detects dead sockets. What to do
// after each (re)connect (resume, re-send) is the caller's onOpen.
import type { ClientFrame, ServerFrame } from '../gen/frames';

export interface WsLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WsCtor = new (url: string, protocols: string[]) => WsLike;

export type ConnState = 'connecting' | 'open' | 'down';

export interface SocketOptions {
  url: () => string;
  /** A token for the next connection; fresh: the last attempts failed, get a new one rather than the cached one. */
  token: (fresh: boolean) => Promise<string>;
  WebSocket?: WsCtor;
  onFrame: (f: ServerFrame) => void;
  onOpen: () => void;
  onState?: (s: ConnState) => void;
  random?: () => number;
  now?: () => number;
  pingEveryMs?: number;
  deadAfterMs?: number;
  /** How long a probe (network change, tab shown) waits for any frame before reconnecting. */
  probeTimeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const OPEN = 1;

export class Socket {
  private ws: WsLike | null = null;
  private attempt = 0;
  private stopped = true;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private tick: ReturnType<typeof setInterval> | undefined;
  private lastFrame = 0;
  private lastPing = 0;
  private pingSeq = 0;
  private generation = 0;
  /** An outstanding liveness probe: a frame must arrive after probeSentAt, before probeUntil. */
  private probeSentAt = 0;
  private probeUntil = 0;
  state: ConnState = 'down';
  private readonly o: Required<Omit<SocketOptions, 'WebSocket' | 'onState'>> & { WebSocket: WsCtor; onState: (s: ConnState) => void };

  constructor(opts: SocketOptions) {
    this.o = {
      ...opts,
      random: opts.random ?? Math.random,
      now: opts.now ?? Date.now,
      pingEveryMs: opts.pingEveryMs ?? 20_000,
      deadAfterMs: opts.deadAfterMs ?? 45_000,
      probeTimeoutMs: opts.probeTimeoutMs ?? 5_000,
      baseDelayMs: opts.baseDelayMs ?? 500,
      maxDelayMs: opts.maxDelayMs ?? 15_000,
      onState: opts.onState ?? (() => {}),
      WebSocket: opts.WebSocket ?? (globalThis.WebSocket as unknown as WsCtor),
    };
  }

  private setState(s: ConnState) {
    if (this.state === s) return;
    this.state = s;
    this.o.onState(s);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
    this.tick = setInterval(() => this.keepalive(), 1000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.tick);
    this.generation++;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      ws.close(1000, 'bye');
    }
    this.setState('down');
  }

  /** The next delay of the backoff: exponential, capped, with "equal jitter". */
  nextDelay(): number {
    const base = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 20);
    return Math.round(base / 2 + this.o.random() * (base / 2));
  }

  private async connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const gen = ++this.generation;
    this.setState('connecting');
    let token: string;
    try {
      token = await this.o.token(this.attempt >= 2);
    } catch {
      if (gen === this.generation) this.scheduleRetry();
      return;
    }
    if (gen !== this.generation || this.stopped) return;
    let ws: WsLike;
    try {
      ws = new this.o.WebSocket(this.o.url(), ['parley.v1', 'parley.auth.' + token]);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.generation) return;
      this.attempt = 0;
      this.probeUntil = 0;
      this.lastFrame = this.o.now();
      this.lastPing = this.o.now();
      this.setState('open');
      this.o.onOpen();
    };
    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      this.lastFrame = this.o.now();
      if (typeof ev.data !== 'string') return;
      let f: ServerFrame;
      try {
        f = JSON.parse(ev.data) as ServerFrame;
      } catch {
        return;
      }
      if (f.type === 'reconnect') {
        this.drop(Math.max(0, f.retry_after_ms ?? 0) + Math.round(this.o.random() * 250));
        return;
      }
      this.o.onFrame(f);
    };
    ws.onclose = () => {
      if (gen !== this.generation) return;
      this.ws = null;
      this.scheduleRetry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /** Closes the current socket and connects again after delayMs. */
  private drop(delayMs: number) {
    const ws = this.ws;
    this.ws = null;
    this.generation++;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try {
        ws.close(4000, 'reconnect');
      } catch {
        /* already closed */
      }
    }
    if (this.stopped) return;
    this.setState('down');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delayMs);
  }

  private scheduleRetry() {
    if (this.stopped) return;
    this.setState('down');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), this.nextDelay());
  }

  /** Reconnect now (network came back, tab became visible) unless connected or connecting. */
  reconnectNow() {
    if (this.stopped) return;
    if (this.state === 'down') {
      this.attempt = 0;
      void this.connect();
    } else if (this.state === 'open') {
      this.probe();
    }
  }

  /**
   * Checks the open socket now: a ping must be answered (or any frame arrive) within
   * probeTimeoutMs, or the socket is taken for dead. A dropped network (the browser's
   * offline event, a laptop waking up) is then noticed in seconds, not after deadAfterMs.
   */
  probe() {
    if (this.state !== 'open' || !this.ws) return;
    this.probeSentAt = this.o.now();
    this.probeUntil = this.probeSentAt + this.o.probeTimeoutMs;
    this.ping();
  }

  private ping() {
    this.lastPing = this.o.now();
    this.send({ type: 'ping', id: 'k' + ++this.pingSeq });
  }

  private keepalive() {
    if (this.state !== 'open' || !this.ws) return;
    const now = this.o.now();
    if (this.probeUntil !== 0 && now >= this.probeUntil) {
      const answered = this.lastFrame > this.probeSentAt;
      this.probeUntil = 0;
      if (!answered) {
        this.drop(0);
        return;
      }
    }
    if (now - this.lastFrame >= this.o.deadAfterMs) {
      this.drop(0);
      return;
    }
    if (now - this.lastPing >= this.o.pingEveryMs) this.ping();
  }

  /** Sends when open; false otherwise (the caller keeps it for the next onOpen). */
  send(f: ClientFrame): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN || this.state !== 'open') return false;
    try {
      ws.send(JSON.stringify(f));
      return true;
    } catch {
      return false;
    }
  }
}

export function wsUrl(loc: { protocol: string; host: string } = location): string {
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}
