// A WebSocket test double for the socket and controller tests: it records what is sent
// and lets a test open, feed and drop the connection. Never imported by the app.
import type { WsLike } from './ws';
import type { ClientFrame } from '../gen/frames';

export class FakeWS implements WsLike {
  static all: FakeWS[] = [];
  readyState = 0;
  sent: ClientFrame[] = [];
  closed: number | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeWS.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }
  close(code = 1000) {
    this.closed = code;
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(f: object) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
}

/** The newest FakeWS. */
export const lastWS = () => FakeWS.all[FakeWS.all.length - 1]!;
