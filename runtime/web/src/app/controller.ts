// The client's controller: wires the REST and WebSocket clients to the pure state
// functions in src/state, and is the only place with side effects. The UI reads
// `store` and calls the methods here.
import type { components } from '../gen/api';
import type { MessageFrame, MessageUpdatedFrame, ServerFrame } from '../gen/frames';
import { Auth, createApi, ok, ApiError, sessionHint, type Api, type User } from '../api/http';
import { Socket, wsUrl, type ConnState, type WsCtor } from '../api/ws';
import { uploadFile, type FileMeta } from '../api/upload';
import { humanFrameError, humanRestError } from '../api/errors';
import { Store } from './store';
import * as M from '../state/messages';
import * as R from '../state/rooms';
import { applyReceipt, type RoomCursors } from '../state/receipts';
import { typingEvent, stopTyping, pruneTyping, shouldSendTyping, type Typing } from '../state/typing';
import { applyBatch, watchList } from '../state/presence';

type Message = components['schemas']['Message'];
export type SearchHit = components['schemas']['SearchHit'];
export interface SearchPage {
  hits: SearchHit[];
  /** Cursor of the next page; empty on the last. */
  next: string;
}
type Room = components['schemas']['Room'];

/** How long watch changes are gathered before one watch frame goes out. */
const WATCH_DEBOUNCE_MS = 150;

export interface Upload {
  key: string;
  roomId: string;
  name: string;
  loaded: number;
  total: number;
  cancel: () => void;
}

export interface Notice {
  id: number;
  text: string;
}

export interface AppState {
  phase: 'starting' | 'anon' | 'ready';
  /** Why we are back on the login screen (expired session, ...). */
  authMessage: string;
  me: User | null;
  rooms: R.Rooms;
  roomsLoaded: boolean;
  timelines: Readonly<Record<string, M.Timeline>>;
  cursors: Readonly<Record<string, RoomCursors>>;
  members: Readonly<Record<string, readonly string[]>>;
  users: Readonly<Record<string, User>>;
  presence: Readonly<Record<string, boolean>>;
  typing: Typing;
  blocked: Readonly<Record<string, true>>;
  conn: ConnState;
  /** True once a socket has been open at least once (the banner waits for a first failure). */
  everOpen: boolean;
  activeRoom: string | null;
  /** Read cursor of the active room when it was opened: the "New messages" line goes after it. */
  newAfter: Readonly<Record<string, number>>;
  loadingOlder: Readonly<Record<string, boolean>>;
  uploads: readonly Upload[];
  notices: readonly Notice[];
  pushAvailable: boolean | null;
  /** Originals of replies fetched because they were not loaded, by server id; null: the room holds no such message. */
  quoted: Readonly<Record<string, M.Msg | null>>;
  /** Emoji I reacted with lately, most recent first. */
  recentEmoji: readonly string[];
  /** A message to show once its room is open (a search result): the conversation reveals it, scrolls to it and flashes it. */
  jumpRequest: { roomId: string; serverId: string } | null;
}

const initial: AppState = {
  phase: 'starting',
  authMessage: '',
  me: null,
  rooms: {},
  roomsLoaded: false,
  timelines: {},
  cursors: {},
  members: {},
  users: {},
  presence: {},
  typing: {},
  blocked: {},
  conn: 'down',
  everOpen: false,
  activeRoom: null,
  newAfter: {},
  loadingOlder: {},
  uploads: [],
  notices: [],
  pushAvailable: null,
  quoted: {},
  recentEmoji: loadRecentEmoji(),
  jumpRequest: null,
};

function loadRecentEmoji(): string[] {
  try {
    const v: unknown = JSON.parse(globalThis.localStorage?.getItem('parley.recentEmoji') ?? '[]');
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').slice(0, 8) : [];
  } catch {
    return [];
  }
}

const SEND_TIMEOUT_MS = 15_000;

function newClientId(): string {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return 'c' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function fromMessage(m: Message, roomId: string): M.StoredInput | null {
  if (!m.seq) return null;
  return {
    clientId: m.client_id ?? m.id ?? String(m.seq),
    senderId: m.sender_id ?? '',
    roomId: m.room_id ?? roomId,
    seq: m.seq,
    serverId: m.id ?? '',
    body: m.body,
    attachments: m.attachments,
    createdAt: m.created_at ?? '',
    hidden: m.hidden,
    ...(m.reply_to ? { replyTo: m.reply_to } : {}),
    ...(m.edited_at ? { editedAt: m.edited_at } : {}),
    ...(m.deleted ? { deleted: true } : {}),
    ...(m.event_seq ? { eventSeq: m.event_seq } : {}),
    ...(m.reactions?.length ? { reactions: m.reactions.map(toReaction) } : {}),
    ...(m.mentions?.length ? { mentions: m.mentions } : {}),
  };
}

function toReaction(r: { emoji?: string; count?: number; users?: string[] }): M.Reaction {
  return { emoji: r.emoji ?? '', count: r.count ?? r.users?.length ?? 0, users: r.users ?? [] };
}

/** A message's state as an update (the answer to an edit or a deletion). */
function updateOf(m: Message): M.UpdateInput | null {
  if (!m.seq || !m.id || !m.event_seq) return null;
  return {
    serverId: m.id,
    seq: m.seq,
    eventSeq: m.event_seq,
    ...(m.body ? { body: m.body } : {}),
    ...(m.attachments?.length ? { attachments: m.attachments } : {}),
    ...(m.edited_at ? { editedAt: m.edited_at } : {}),
    ...(m.deleted ? { deleted: true } : {}),
    ...(m.reactions?.length ? { reactions: m.reactions.map(toReaction) } : {}),
    ...(m.mentions?.length ? { mentions: m.mentions } : {}),
  };
}

function updateOfFrame(f: MessageUpdatedFrame): M.UpdateInput {
  return {
    serverId: f.message_id,
    seq: f.seq,
    eventSeq: f.event_seq,
    ...(f.body ? { body: f.body } : {}),
    ...(f.attachments?.length ? { attachments: f.attachments } : {}),
    ...(f.edited_at ? { editedAt: f.edited_at } : {}),
    ...(f.deleted ? { deleted: true } : {}),
    ...(f.hidden ? { hidden: true } : {}),
    ...(f.reactions?.length ? { reactions: f.reactions.map(toReaction) } : {}),
    ...(f.mentions?.length ? { mentions: f.mentions } : {}),
  };
}

function fromFrame(f: MessageFrame): M.StoredInput {
  return {
    clientId: f.id,
    senderId: f.sender,
    roomId: f.room,
    seq: f.seq,
    serverId: f.message_id,
    body: f.body,
    attachments: f.attachments,
    createdAt: f.created_at,
    hidden: f.hidden ?? false,
    ...(f.reply_to ? { replyTo: f.reply_to } : {}),
    ...(f.mentions?.length ? { mentions: f.mentions } : {}),
  };
}

export interface ControllerOptions {
  WebSocket?: WsCtor;
  /** For tests: fetch, origin of the REST API and the socket URL. */
  fetch?: (r: Request) => Promise<Response>;
  base?: string;
  wsUrl?: string;
}

export class Controller {
  readonly store = new Store<AppState>(initial);
  readonly auth: Auth;
  readonly api: Api;
  private socket: Socket;
  private sendTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private historyInflight = new Set<string>();
  private userInflight = new Set<string>();
  private lastTypingSent = new Map<string, number>();
  private deliveredSent = new Map<string, number>();
  private readSent = new Map<string, number>();
  private deliverTimer: ReturnType<typeof setTimeout> | undefined;
  private metaCache = new Map<string, { meta: FileMeta; until: number }>();
  private metaInflight = new Map<string, Promise<FileMeta>>();
  private noticeSeq = 0;
  private pruneTimer: ReturnType<typeof setInterval> | undefined;
  /** The users named by the last watch frame on this connection (joined), and a pending send. */
  private watchSent = '';
  private watchTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the user is looking at the bottom of the active room (set by the UI). */
  private atBottom = true;

  constructor(opts: ControllerOptions = {}) {
    this.auth = new Auth({
      onLoggedOut: (reason) => this.toAnon(reason),
      fetch: opts.fetch,
      base: opts.base,
    });
    this.api = createApi(this.auth, opts.base ?? '');
    this.socket = new Socket({
      url: () => opts.wsUrl ?? wsUrl(),
      token: (fresh) => (fresh ? this.auth.refresh() : this.auth.token()),
      WebSocket: opts.WebSocket,
      onFrame: (f) => this.onFrame(f),
      onOpen: () => this.onOpen(),
      onState: (s) => this.store.set((st) => ({ conn: s, everOpen: st.everOpen || s === 'open' })),
    });
  }

  get s(): AppState {
    return this.store.get();
  }

  // ---------------------------------------------------------------- notices

  notify(text: string) {
    const id = ++this.noticeSeq;
    this.store.set((s) => ({ notices: [...s.notices.filter((n) => n.text !== text), { id, text }] }));
    setTimeout(() => this.dismiss(id), 6000);
  }

  dismiss(id: number) {
    this.store.set((s) => ({ notices: s.notices.filter((n) => n.id !== id) }));
  }

  private fail(e: unknown) {
    this.notify(e instanceof ApiError ? e.message : e instanceof Error ? e.message : String(e));
  }

  // ---------------------------------------------------------------- session

  async start() {
    if (!sessionHint()) {
      this.store.set({ phase: 'anon' });
      return;
    }
    try {
      await this.auth.refresh();
    } catch (e) {
      const msg = e instanceof ApiError && e.code === 'network' ? e.message : '';
      this.store.set({ phase: 'anon', authMessage: msg });
      return;
    }
    await this.enter();
  }

  async login(username: string, password: string) {
    const user = await this.auth.login(username, password);
    this.store.set({ me: user });
    await this.enter();
  }

  async register(username: string, password: string, displayName: string, inviteCode = '') {
    const user = await this.auth.register(username, password, displayName, inviteCode);
    this.store.set({ me: user });
    await this.enter();
  }

  async logout() {
    try {
      await this.auth.logout();
    } catch {
      /* the cookie is cleared server-side when reachable; either way we leave */
    }
    this.toAnon('');
  }

  private toAnon(reason: string) {
    this.socket.stop();
    clearInterval(this.pruneTimer);
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    this.watchSent = '';
    for (const t of this.sendTimers.values()) clearTimeout(t);
    this.sendTimers.clear();
    this.store.set({ ...initial, phase: 'anon', authMessage: reason });
  }

  private async enter() {
    try {
      const me = await ok(this.api.GET('/api/v1/me'));
      this.store.set((s) => ({ me, users: { ...s.users, [me.id ?? '']: me } }));
    } catch (e) {
      if (!this.auth.loggedIn) return;
      this.fail(e);
    }
    this.store.set({ phase: 'ready', authMessage: '' });
    this.socket.start();
    this.pruneTimer = setInterval(() => {
      const next = pruneTyping(this.s.typing, Date.now());
      if (next !== this.s.typing) this.store.set({ typing: next });
    }, 1000);
    void this.loadRooms();
    void this.loadBlocks();
  }

  /** Network back or tab visible: reconnect now rather than after the backoff. */
  wake() {
    if (this.s.phase !== 'ready') return;
    this.socket.reconnectNow();
    // Rooms I was added to say nothing until their first message: look again now and then.
    if (Date.now() - this.roomsFetchedAt > 30_000) void this.loadRooms();
  }
  private roomsFetchedAt = 0;

  /** The network changed under us (offline event): check the socket within seconds. */
  probe() {
    if (this.s.phase !== 'ready') return;
    this.socket.probe();
  }

  private get meId(): string {
    return this.s.me?.id ?? '';
  }

  // ---------------------------------------------------------------- rooms and users

  async loadRooms() {
    this.roomsFetchedAt = Date.now();
    try {
      const data = await ok(this.api.GET('/api/v1/rooms'));
      const fresh = R.fromSummaries(data.rooms ?? []);
      this.store.set((s) => ({ rooms: R.mergeSummaries(s.rooms, fresh), roomsLoaded: true }));
      // Whatever reached this device is delivered, also in rooms not opened yet.
      for (const sum of data.rooms ?? []) {
        const id = sum.room?.id;
        const last = sum.room?.last_seq ?? 0;
        if (id && last > (sum.receipt?.delivered_seq ?? 0)) this.markDelivered(id, last);
      }
      for (const e of Object.values(fresh)) {
        if (e.room.kind === 'direct') void this.loadMembers(e.id);
        if (e.last?.senderId) this.ensureUser(e.last.senderId);
        const t = this.s.timelines[e.id];
        if (t?.loaded && (e.room.last_seq ?? 0) > M.lastSeq(t)) void this.fetchAfter(e.id, M.lastSeq(t));
      }
    } catch (e) {
      this.store.set({ roomsLoaded: true });
      this.fail(e);
    }
  }

  private async loadBlocks() {
    try {
      const data = await ok(this.api.GET('/api/v1/blocks'));
      const blocked: Record<string, true> = {};
      for (const u of data.users ?? []) if (u.id) blocked[u.id] = true;
      this.store.set({ blocked });
    } catch (e) {
      this.fail(e);
    }
  }

  ensureUser(id: string) {
    if (!id || this.s.users[id] || this.userInflight.has(id)) return;
    this.userInflight.add(id);
    ok(this.api.GET('/api/v1/users/{userID}', { params: { path: { userID: id } } }))
      .then((u) => this.store.set((s) => ({ users: { ...s.users, [id]: u } })))
      .catch(() => {
        /* shown as the id; retried on the next mention */
      })
      .finally(() => this.userInflight.delete(id));
  }

  async loadMembers(roomId: string) {
    try {
      const data = await ok(this.api.GET('/api/v1/rooms/{roomID}/members', { params: { path: { roomID: roomId } } }));
      const ids = (data.members ?? []).map((m) => m.user_id ?? '').filter(Boolean);
      this.store.set((s) => ({ members: { ...s.members, [roomId]: ids } }));
      for (const id of ids) this.ensureUser(id);
      this.scheduleWatch();
    } catch (e) {
      if (e instanceof ApiError && (e.code === 'not_member' || e.code === 'room_not_found')) this.forgetRoom(roomId);
      else this.fail(e);
    }
  }

  private async loadReceipts(roomId: string) {
    try {
      const data = await ok(this.api.GET('/api/v1/rooms/{roomID}/receipts', { params: { path: { roomID: roomId } } }));
      this.store.set((s) => {
        let c = s.cursors[roomId] ?? {};
        for (const r of data.receipts ?? []) if (r.user_id) c = applyReceipt(c, r.user_id, r.delivered_seq ?? 0, r.read_seq ?? 0);
        return { cursors: { ...s.cursors, [roomId]: c } };
      });
    } catch (e) {
      // Ticks stay at Sent until receipts arrive live; say why.
      this.fail(e);
    }
  }

  /** A room's display name: a group's name, a DM's other person. */
  roomName(id: string): string {
    const e = this.s.rooms[id];
    if (!e) return 'Conversation';
    if (e.room.kind !== 'direct') return e.room.name || 'Group';
    const other = this.dmPeer(id);
    if (other) return this.userName(other);
    return e.room.name || 'Direct message';
  }

  dmPeer(id: string): string | undefined {
    return (this.s.members[id] ?? []).find((u) => u !== this.meId);
  }

  userName(id: string): string {
    const u = this.s.users[id];
    return u?.display_name || u?.username || (id === this.meId ? 'You' : 'Someone');
  }

  private forgetRoom(id: string) {
    this.store.set((s) => ({ rooms: R.removeRoom(s.rooms, id), activeRoom: s.activeRoom === id ? null : s.activeRoom }));
  }

  private addRoom(room: Room) {
    this.store.set((s) => ({ rooms: R.upsertRoom(s.rooms, room) }));
    if (room.id) void this.loadMembers(room.id);
  }

  async searchUsers(prefix: string): Promise<User[]> {
    const data = await ok(this.api.GET('/api/v1/users', { params: { query: { prefix, limit: 20 } } }));
    const users = (data.users ?? []).filter((u) => u.id !== this.meId);
    this.store.set((s) => {
      const next = { ...s.users };
      for (const u of users) if (u.id) next[u.id] = u;
      return { users: next };
    });
    return users;
  }

  async startDirect(userId: string): Promise<string> {
    const room = await ok(this.api.POST('/api/v1/rooms/direct', { body: { user_id: userId } }));
    this.addRoom(room);
    return room.id ?? '';
  }

  async createGroup(name: string, memberIds: string[]): Promise<string> {
    const room = await ok(this.api.POST('/api/v1/rooms', { body: { name, member_ids: memberIds } }));
    this.addRoom(room);
    return room.id ?? '';
  }

  async addMember(roomId: string, userId: string) {
    await ok(this.api.POST('/api/v1/rooms/{roomID}/members', { params: { path: { roomID: roomId } }, body: { user_id: userId } }));
    await this.loadMembers(roomId);
  }

  async removeMember(roomId: string, userId: string) {
    await ok(this.api.DELETE('/api/v1/rooms/{roomID}/members/{userID}', { params: { path: { roomID: roomId, userID: userId } } }));
    if (userId === this.meId) this.forgetRoom(roomId);
    else await this.loadMembers(roomId);
  }

  async transferOwner(roomId: string, userId: string) {
    await ok(this.api.PUT('/api/v1/rooms/{roomID}/owner', { params: { path: { roomID: roomId } }, body: { user_id: userId } }));
    const room = await ok(this.api.GET('/api/v1/rooms/{roomID}', { params: { path: { roomID: roomId } } }));
    this.addRoom(room);
  }

  async rename(roomId: string, name: string) {
    const room = await ok(this.api.PATCH('/api/v1/rooms/{roomID}', { params: { path: { roomID: roomId } }, body: { name } }));
    this.addRoom(room);
  }

  async block(userId: string) {
    await ok(this.api.PUT('/api/v1/blocks/{userID}', { params: { path: { userID: userId } } }));
    this.store.set((s) => ({ blocked: { ...s.blocked, [userId]: true } }));
  }

  async unblock(userId: string) {
    await ok(this.api.DELETE('/api/v1/blocks/{userID}', { params: { path: { userID: userId } } }));
    this.store.set((s) => {
      const { [userId]: _gone, ...rest } = s.blocked;
      return { blocked: rest };
    });
  }

  async saveProfile(p: { display_name?: string; status_text?: string; avatar_file_id?: string }) {
    const me = await ok(this.api.PATCH('/api/v1/me', { body: p }));
    this.store.set((s) => ({ me, users: { ...s.users, [me.id ?? '']: me } }));
  }

  // ---------------------------------------------------------------- search and notification levels

  /** One page of search results (GET /search); cursor continues a previous page. */
  async search(q: string, opts: { room?: string; cursor?: string } = {}): Promise<SearchPage> {
    const query: { q: string; limit: number; room?: string; cursor?: string } = { q, limit: 20 };
    if (opts.room) query.room = opts.room;
    if (opts.cursor) query.cursor = opts.cursor;
    const data = await ok(this.api.GET('/api/v1/search', { params: { query } }));
    for (const h of data.hits) if (h.message.sender_id) this.ensureUser(h.message.sender_id);
    return { hits: data.hits, next: data.next_cursor ?? '' };
  }

  /** Opens a room at one of its messages (a search hit). */
  openAt(roomId: string, serverId: string) {
    this.store.set({ jumpRequest: { roomId, serverId } });
    location.hash = '#/room/' + encodeURIComponent(roomId);
  }

  /** The conversation takes the jump request meant for it, once. */
  takeJump(roomId: string): string | null {
    const j = this.s.jumpRequest;
    if (!j || j.roomId !== roomId) return null;
    this.store.set({ jumpRequest: null });
    return j.serverId;
  }

  async setNotificationLevel(roomId: string, level: R.NotifyLevel) {
    const data = await ok(
      this.api.PUT('/api/v1/rooms/{roomID}/notifications', { params: { path: { roomID: roomId } }, body: { level } }),
    );
    this.store.set((s) => ({ rooms: R.setLevel(s.rooms, roomId, data.level) }));
  }

  // ---------------------------------------------------------------- conversation

  openRoom(id: string | null) {
    if (id === this.s.activeRoom) return;
    this.atBottom = true;
    if (!id) {
      this.store.set({ activeRoom: null });
      return;
    }
    const e = this.s.rooms[id];
    this.store.set((s) => ({ activeRoom: id, newAfter: { ...s.newAfter, [id]: e && e.unread > 0 ? e.myRead : Number.MAX_SAFE_INTEGER } }));
    const t = this.s.timelines[id];
    if (!t?.loaded) void this.fetchLatest(id);
    else {
      const g = M.gapAfter(t);
      if (g !== null) void this.fetchAfter(id, g);
    }
    void this.loadMembers(id);
    void this.loadReceipts(id);
    this.scheduleWatch();
  }

  /**
   * Tells the server, in one watch frame, whose presence this client shows, when that
   * changed. Coalesced: opening the room list loads every direct chat's members at once.
   */
  private scheduleWatch() {
    if (this.watchTimer !== undefined) return;
    this.watchTimer = setTimeout(() => {
      this.watchTimer = undefined;
      const users = watchList(this.meId, this.s.rooms, this.s.members, this.s.activeRoom);
      const key = users.join('\n');
      if (key === this.watchSent) return;
      if (this.socket.send({ type: 'watch', users })) this.watchSent = key;
    }, WATCH_DEBOUNCE_MS);
  }

  private setTimeline(roomId: string, f: (t: M.Timeline) => M.Timeline) {
    this.store.set((s) => {
      const old = s.timelines[roomId] ?? M.emptyTimeline;
      const next = f(old);
      return next === old ? {} : { timelines: { ...s.timelines, [roomId]: next } };
    });
  }

  private pageIn(roomId: string, msgs: Message[], kind: 'latest' | 'before' | 'after') {
    const inputs = msgs.map((m) => fromMessage(m, roomId)).filter((x): x is M.StoredInput => x !== null);
    this.setTimeline(roomId, (t) => M.applyPage(t, inputs, kind));
    for (const m of inputs) for (const id of [m.senderId, ...(m.mentions ?? [])]) this.ensureUser(id);
    const last = inputs[inputs.length - 1];
    if (last) {
      this.store.set((s) => ({
        rooms: R.noteMessage(
          s.rooms,
          roomId,
          {
            seq: last.seq,
            senderId: last.senderId,
            body: last.body ?? '',
            attachments: last.attachments?.length ?? 0,
            hidden: last.hidden ?? false,
            at: last.createdAt,
          },
          this.meId,
          true,
        ),
      }));
      this.markDelivered(roomId, last.seq);
      if (this.reading(roomId)) this.markReadActive();
    }
    this.checkGap(roomId);
  }

  private async fetchLatest(roomId: string) {
    const key = roomId + ':latest';
    if (this.historyInflight.has(key)) return;
    this.historyInflight.add(key);
    try {
      const data = await ok(
        this.api.GET('/api/v1/rooms/{roomID}/messages', { params: { path: { roomID: roomId }, query: { limit: 50 } } }),
      );
      if (!this.s.timelines[roomId]?.loaded) this.setTimeline(roomId, (t) => M.startEvents(t, data.event_seq ?? 0));
      this.pageIn(roomId, data.messages ?? [], 'latest');
    } catch (e) {
      this.fail(e);
    } finally {
      this.historyInflight.delete(key);
    }
  }

  private async fetchAfter(roomId: string, after: number) {
    const key = roomId + ':after';
    if (this.historyInflight.has(key)) return;
    this.historyInflight.add(key);
    try {
      let cursor = after;
      for (let i = 0; i < 50; i++) {
        const data = await ok(
          this.api.GET('/api/v1/rooms/{roomID}/messages', { params: { path: { roomID: roomId }, query: { after: cursor, limit: 200 } } }),
        );
        this.pageIn(roomId, data.messages ?? [], 'after');
        if (!data.has_more || !data.next_after || data.next_after <= cursor) break;
        cursor = data.next_after;
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.historyInflight.delete(key);
    }
  }

  private applyUpdate(roomId: string, u: M.UpdateInput) {
    this.setTimeline(roomId, (t) => M.applyUpdate(t, u));
    for (const id of u.mentions ?? []) this.ensureUser(id);
    // The room list's preview follows an edit or a deletion of the last message.
    const last = this.s.rooms[roomId]?.last;
    if (last && last.seq === u.seq && !u.hidden && (u.deleted || (u.body ?? '') !== last.body)) {
      this.store.set((s) => ({
        rooms: R.noteMessage(
          s.rooms,
          roomId,
          { ...last, body: u.deleted ? 'Message deleted' : (u.body ?? ''), attachments: u.deleted ? 0 : (u.attachments?.length ?? 0) },
          this.meId,
          true,
        ),
      }));
    }
    const q = this.s.quoted[u.serverId];
    if (q && !u.hidden && u.eventSeq > (q.eventSeq ?? 0)) {
      const t = M.applyUpdate(M.mergeStored(M.emptyTimeline, [{ ...q, seq: q.seq ?? u.seq, serverId: u.serverId }]), u);
      const next = t.stored[0];
      if (next) this.store.set((s) => ({ quoted: { ...s.quoted, [u.serverId]: next } }));
    }
  }

  /** Edits my message's body; the room sees it through a message_updated frame. */
  async editMessage(roomId: string, serverId: string, body: string) {
    const text = body.replace(/\s+$/u, '');
    try {
      const m = await ok(
        this.api.PATCH('/api/v1/rooms/{roomID}/messages/{messageID}', {
          params: { path: { roomID: roomId, messageID: serverId } },
          body: { client_id: newClientId(), body: text },
        }),
      );
      const u = updateOf(m);
      if (u) this.applyUpdate(roomId, u);
    } catch (e) {
      this.fail(e);
    }
  }

  /** Toggles my reaction on a message; remembers the emoji as recently used. */
  async react(roomId: string, serverId: string, emoji: string) {
    this.store.set((s) => ({ recentEmoji: M.noteRecent(s.recentEmoji, emoji) }));
    try {
      localStorage.setItem('parley.recentEmoji', JSON.stringify(this.s.recentEmoji));
    } catch {
      // private mode: recent emoji last for this session only
    }
    try {
      const m = await ok(
        this.api.POST('/api/v1/rooms/{roomID}/messages/{messageID}/reactions', {
          params: { path: { roomID: roomId, messageID: serverId } },
          body: { client_id: newClientId(), emoji },
        }),
      );
      const u = updateOf(m);
      if (u) this.applyUpdate(roomId, u);
    } catch (e) {
      this.fail(e);
    }
  }

  /** Deletes a message for everyone. */
  async deleteMessage(roomId: string, serverId: string) {
    try {
      const m = await ok(
        this.api.DELETE('/api/v1/rooms/{roomID}/messages/{messageID}', { params: { path: { roomID: roomId, messageID: serverId } } }),
      );
      const u = updateOf(m);
      if (u) this.applyUpdate(roomId, u);
    } catch (e) {
      this.fail(e);
    }
  }

  private quoteInflight = new Set<string>();

  /** Fetches the original of a reply that is not loaded (shown as a quote). */
  async fetchQuoted(roomId: string, serverId: string) {
    if (this.quoteInflight.has(serverId) || serverId in this.s.quoted || M.findByServerId(this.s.timelines[roomId], serverId)) return;
    this.quoteInflight.add(serverId);
    try {
      const { data, response } = await this.api.GET('/api/v1/rooms/{roomID}/messages/{messageID}', {
        params: { path: { roomID: roomId, messageID: serverId } },
      });
      let got: M.Msg | null = null;
      if (data) {
        const input = fromMessage(data, roomId);
        if (input) {
          got = M.mergeStored(M.emptyTimeline, [input]).stored[0] ?? null;
          this.ensureUser(input.senderId);
        }
      } else if (response.status !== 404) return; // try again next time it is shown
      this.store.set((s) => ({ quoted: { ...s.quoted, [serverId]: got } }));
    } catch {
      // offline: the quote says it is loading and is asked for again when shown again
    } finally {
      this.quoteInflight.delete(serverId);
    }
  }

  /**
   * Makes the message with this server id part of the loaded timeline (loading older pages
   * down to it) and returns its seq, or null when the room holds no such message.
   */
  async reveal(roomId: string, serverId: string): Promise<number | null> {
    let seq = M.findByServerId(this.s.timelines[roomId], serverId)?.seq;
    if (seq !== undefined) return seq;
    await this.fetchQuoted(roomId, serverId);
    const target = this.s.quoted[serverId]?.seq;
    if (target === undefined) return null;
    for (let i = 0; i < 100; i++) {
      const t = this.s.timelines[roomId];
      const first = t?.stored[0]?.seq;
      if (!t || first === undefined || first <= target || !t.hasMoreBefore) break;
      if (this.s.loadingOlder[roomId]) await new Promise((r) => setTimeout(r, 50));
      else await this.loadOlder(roomId);
    }
    seq = M.findByServerId(this.s.timelines[roomId], serverId)?.seq;
    return seq ?? null;
  }

  /** Loads the page before the oldest loaded message. */
  async loadOlder(roomId: string) {
    const t = this.s.timelines[roomId];
    const first = t?.stored[0]?.seq;
    if (!t || !t.hasMoreBefore || first === undefined || this.s.loadingOlder[roomId]) return;
    this.store.set((s) => ({ loadingOlder: { ...s.loadingOlder, [roomId]: true } }));
    try {
      const data = await ok(
        this.api.GET('/api/v1/rooms/{roomID}/messages', { params: { path: { roomID: roomId }, query: { before: first, limit: 50 } } }),
      );
      this.pageIn(roomId, data.messages ?? [], 'before');
    } catch (e) {
      this.fail(e);
    } finally {
      this.store.set((s) => ({ loadingOlder: { ...s.loadingOlder, [roomId]: false } }));
    }
  }

  private checkGap(roomId: string) {
    const t = this.s.timelines[roomId];
    if (!t?.loaded) return;
    const g = M.gapAfter(t);
    if (g !== null) void this.fetchAfter(roomId, g);
  }

  send(roomId: string, body: string, attachments: string[] = [], replyTo?: string) {
    const text = body.replace(/\s+$/u, '');
    if (!text.trim() && attachments.length === 0) return;
    const clientId = newClientId();
    const at = new Date().toISOString();
    this.setTimeline(roomId, (t) =>
      M.addPending(t, { clientId, senderId: this.meId, roomId, body: text, attachments, createdAt: at, ...(replyTo ? { replyTo } : {}) }),
    );
    this.store.set((s) => ({
      rooms: R.noteMessage(
        s.rooms,
        roomId,
        { senderId: this.meId, body: text, attachments: attachments.length, hidden: false, at },
        this.meId,
        true,
      ),
    }));
    this.transmit(roomId, clientId);
  }

  private transmit(roomId: string, clientId: string) {
    const m = this.s.timelines[roomId]?.pending.find((p) => p.clientId === clientId && p.senderId === this.meId);
    if (!m) return;
    const sent = this.socket.send({
      type: 'send',
      id: clientId,
      room: roomId,
      body: m.body,
      ...(m.attachments.length ? { attachments: [...m.attachments] } : {}),
      ...(m.replyTo ? { reply_to: m.replyTo } : {}),
    });
    clearTimeout(this.sendTimers.get(clientId));
    if (sent) {
      this.sendTimers.set(
        clientId,
        setTimeout(() => {
          this.sendTimers.delete(clientId);
          const still = this.s.timelines[roomId]?.pending.find((p) => p.clientId === clientId);
          if (still && still.status === 'sending') this.setTimeline(roomId, (t) => M.markFailed(t, clientId, this.meId, 'timeout'));
        }, SEND_TIMEOUT_MS),
      );
    }
    // When not connected the message stays "Sending" and goes out with the next onOpen.
  }

  retry(roomId: string, clientId: string) {
    this.setTimeline(roomId, (t) => M.markRetrying(t, clientId, this.meId));
    this.transmit(roomId, clientId);
  }

  discard(roomId: string, clientId: string) {
    clearTimeout(this.sendTimers.get(clientId));
    this.sendTimers.delete(clientId);
    this.setTimeline(roomId, (t) => M.discard(t, clientId, this.meId));
  }

  typingNow(roomId: string) {
    const now = Date.now();
    if (!shouldSendTyping(this.lastTypingSent.get(roomId), now)) return;
    if (this.socket.send({ type: 'typing', room: roomId })) this.lastTypingSent.set(roomId, now);
  }

  /** The UI reports whether the active room is visible at its bottom; then it is read. */
  setReading(atBottom: boolean) {
    this.atBottom = atBottom;
    if (atBottom) this.markReadActive();
  }

  private reading(roomId: string): boolean {
    return this.s.activeRoom === roomId && this.atBottom && typeof document !== 'undefined' && document.visibilityState === 'visible';
  }

  markReadActive() {
    const roomId = this.s.activeRoom;
    if (!roomId || !this.reading(roomId)) return;
    const t = this.s.timelines[roomId];
    if (!t) return;
    const seq = M.lastSeq(t);
    if (seq <= 0) return;
    this.store.set((s) => ({ rooms: R.noteRead(s.rooms, roomId, seq, 0) }));
    if ((this.readSent.get(roomId) ?? 0) >= seq) return;
    // Coalesced like delivered marks: a burst of arrivals while reading (a resume, a busy
    // group) sends one mark with the highest seq, not one per message, which would run
    // into the per-user frame rate and show "sending too fast".
    if ((this.readWanted.get(roomId) ?? 0) < seq) this.readWanted.set(roomId, seq);
    if (this.readTimer === undefined) this.readTimer = setTimeout(() => this.flushRead(), 300);
  }

  private readWanted = new Map<string, number>();
  private readTimer: ReturnType<typeof setTimeout> | undefined;
  private flushRead() {
    this.readTimer = undefined;
    const wanted = [...this.readWanted];
    this.readWanted.clear();
    for (const [roomId, seq] of wanted) {
      if ((this.readSent.get(roomId) ?? 0) >= seq) continue;
      this.readSent.set(roomId, seq);
      if (!this.socket.send({ type: 'mark', room: roomId, kind: 'read', seq })) {
        ok(this.api.POST('/api/v1/rooms/{roomID}/receipts', { params: { path: { roomID: roomId } }, body: { kind: 'read', seq } })).catch(
          () => this.readSent.delete(roomId),
        );
      }
    }
  }

  private markDelivered(roomId: string, seq: number) {
    if ((this.deliveredSent.get(roomId) ?? 0) >= seq) return;
    this.deliveredSent.set(roomId, seq);
    if (this.deliverTimer === undefined) {
      this.deliverTimer = setTimeout(() => this.flushDelivered(), 300);
    }
  }

  private pendingDelivered = new Map<string, number>();
  private flushDelivered() {
    this.deliverTimer = undefined;
    for (const [roomId, seq] of this.deliveredSent) {
      if ((this.pendingDelivered.get(roomId) ?? 0) >= seq) continue;
      const mine = this.s.cursors[roomId]?.[this.meId];
      if (mine && mine.delivered >= seq) continue;
      if (this.socket.send({ type: 'mark', room: roomId, kind: 'delivered', seq })) this.pendingDelivered.set(roomId, seq);
      else this.deliveredSent.delete(roomId);
    }
  }

  // ---------------------------------------------------------------- socket

  private onOpen() {
    // Resume every loaded room from its last contiguous sequence.
    const rooms = M.resumePoints(this.s.timelines);
    const events = M.eventPoints(this.s.timelines);
    if (Object.keys(rooms).length > 0) this.socket.send({ type: 'resume', rooms, events });
    // Re-send what was never acked, with the same client ids: the server deduplicates.
    for (const [roomId, t] of Object.entries(this.s.timelines)) for (const m of M.unsent(t)) this.transmit(roomId, m.clientId);
    this.pendingDelivered.clear();
    this.deliveredSent.clear();
    this.readSent.clear();
    // A new connection watches nobody yet.
    this.watchSent = '';
    this.scheduleWatch();
    if (this.s.roomsLoaded) void this.loadRooms();
    this.markReadActive();
  }

  private onFrame(f: ServerFrame) {
    switch (f.type) {
      case 'ack': {
        clearTimeout(this.sendTimers.get(f.id));
        this.sendTimers.delete(f.id);
        this.setTimeline(f.room, (t) =>
          M.applyAck(t, {
            clientId: f.id,
            senderId: this.meId,
            roomId: f.room,
            seq: f.seq,
            serverId: f.message_id,
            createdAt: f.created_at,
          }),
        );
        const m = this.s.timelines[f.room]?.stored.find((x) => x.seq === f.seq);
        if (m)
          this.store.set((s) => ({
            rooms: R.noteMessage(
              s.rooms,
              f.room,
              { seq: f.seq, senderId: this.meId, body: m.body, attachments: m.attachments.length, hidden: false, at: f.created_at },
              this.meId,
              true,
            ),
          }));
        this.checkGap(f.room);
        break;
      }
      case 'message_updated': {
        this.applyUpdate(f.room, updateOfFrame(f));
        break;
      }
      case 'message': {
        const input = fromFrame(f);
        if (input.senderId === this.meId) {
          clearTimeout(this.sendTimers.get(input.clientId));
          this.sendTimers.delete(input.clientId);
        }
        if (!this.s.rooms[f.room]) void this.loadRooms();
        this.setTimeline(f.room, (t) => M.mergeStored(t, [input]));
        this.ensureUser(input.senderId);
        for (const id of input.mentions ?? []) this.ensureUser(id);
        const reading = this.reading(f.room);
        this.store.set((s) => ({
          typing: stopTyping(s.typing, f.room, input.senderId),
          rooms: R.noteMessage(
            s.rooms,
            f.room,
            {
              seq: f.seq,
              senderId: input.senderId,
              body: input.body ?? '',
              attachments: input.attachments?.length ?? 0,
              hidden: input.hidden ?? false,
              at: input.createdAt,
              mentionsMe: input.mentions?.includes(this.meId) ?? false,
            },
            this.meId,
            reading,
          ),
        }));
        if (input.senderId !== this.meId) this.markDelivered(f.room, f.seq);
        if (reading) this.markReadActive();
        this.checkGap(f.room);
        break;
      }
      case 'receipt': {
        this.store.set((s) => ({
          cursors: { ...s.cursors, [f.room]: applyReceipt(s.cursors[f.room] ?? {}, f.user, f.delivered_seq ?? 0, f.read_seq ?? 0) },
          rooms: f.user === this.meId ? R.noteRead(s.rooms, f.room, f.read_seq ?? 0) : s.rooms,
        }));
        break;
      }
      case 'typing': {
        // Someone typing is online, whatever presence said last (presence only reports changes).
        if (f.user !== this.meId)
          this.store.set((s) => ({
            typing: typingEvent(s.typing, f.room, f.user, Date.now()),
            presence: s.presence[f.user] ? s.presence : { ...s.presence, [f.user]: true },
          }));
        this.ensureUser(f.user);
        break;
      }
      case 'presence_batch': {
        this.store.set((s) => {
          const presence = applyBatch(s.presence, f.presence);
          return presence === s.presence ? {} : { presence };
        });
        break;
      }
      case 'resync': {
        // Live deliveries may have been lost (the gateway's routing was down): on this same
        // connection, fetch what was missed and re-send what was never acked (same ids).
        const rooms = M.resumePoints(this.s.timelines);
        const events = M.eventPoints(this.s.timelines);
        if (Object.keys(rooms).length > 0) this.socket.send({ type: 'resume', rooms, events });
        for (const [roomId, t] of Object.entries(this.s.timelines)) for (const m of M.unsent(t)) this.transmit(roomId, m.clientId);
        break;
      }
      case 'presence': {
        // From a server before presence batching.
        this.store.set((s) => ({ presence: { ...s.presence, [f.user]: f.online } }));
        break;
      }
      case 'error': {
        if (f.ref === 'send' && f.id) {
          const id = f.id;
          clearTimeout(this.sendTimers.get(id));
          this.sendTimers.delete(id);
          const roomId = f.room ?? Object.keys(this.s.timelines).find((r) => this.s.timelines[r]!.pending.some((p) => p.clientId === id));
          if (roomId) this.setTimeline(roomId, (t) => M.markFailed(t, id, this.meId, f.code));
          if (f.code === 'internal') setTimeout(() => roomId && this.retry(roomId, id), 1000);
          break;
        }
        if (f.ref === 'typing' || f.ref === 'ping') break;
        if (f.ref === 'resume' && f.room && (f.code === 'not_member' || f.code === 'room_not_found')) {
          this.forgetRoom(f.room);
          break;
        }
        this.notify(humanFrameError(f.code));
        break;
      }
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- files

  uploadFiles(roomId: string, files: readonly File[]) {
    for (const file of files) void this.uploadOne(roomId, file);
  }

  private async uploadOne(roomId: string, file: File) {
    const key = newClientId();
    let token: string;
    try {
      token = await this.auth.token();
    } catch (e) {
      this.fail(e);
      return;
    }
    const h = uploadFile(file, token, (loaded, total) =>
      this.store.set((s) => ({ uploads: s.uploads.map((u) => (u.key === key ? { ...u, loaded, total } : u)) })),
    );
    this.store.set((s) => ({
      uploads: [...s.uploads, { key, roomId, name: file.name || 'file', loaded: 0, total: file.size, cancel: h.cancel }],
    }));
    try {
      const meta = await h.promise;
      this.metaCache.set(meta.id, { meta, until: 0 });
      this.send(roomId, '', [meta.id]);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'aborted')) this.fail(e);
    } finally {
      this.store.set((s) => ({ uploads: s.uploads.filter((u) => u.key !== key) }));
    }
  }

  /** File metadata with fresh signed URLs (cached until shortly before they expire). */
  fileMeta(id: string): Promise<FileMeta> {
    const c = this.metaCache.get(id);
    if (c && c.until > Date.now()) return Promise.resolve(c.meta);
    const inflight = this.metaInflight.get(id);
    if (inflight) return inflight;
    const p = (async () => {
      const res = await this.auth.authedFetch(new Request('/api/v1/files/' + encodeURIComponent(id) + '/meta'));
      const body = (await res.json().catch(() => null)) as (FileMeta & { code?: string }) | null;
      if (!res.ok || !body) throw new ApiError(res.status, body?.code ?? 'internal');
      const exp = body.urls_expire_at ? Date.parse(body.urls_expire_at) : NaN;
      this.metaCache.set(id, { meta: body, until: Number.isFinite(exp) ? exp - 30_000 : Date.now() + 60_000 });
      return body;
    })();
    this.metaInflight.set(id, p);
    p.finally(() => this.metaInflight.delete(id)).catch(() => {});
    return p;
  }

  async uploadAvatar(file: File) {
    const token = await this.auth.token();
    const meta = await uploadFile(file, token, () => {}).promise;
    await this.saveProfile({ avatar_file_id: meta.id });
  }

  // ---------------------------------------------------------------- push

  async checkPush() {
    if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
      this.store.set({ pushAvailable: false });
      return;
    }
    try {
      await ok(this.api.GET('/api/v1/push/vapid-public-key'));
      this.store.set({ pushAvailable: true });
    } catch {
      this.store.set({ pushAvailable: false });
    }
  }

  async enablePush(): Promise<string> {
    const { public_key } = await ok(this.api.GET('/api/v1/push/vapid-public-key'));
    if (!public_key) throw new ApiError(404, 'push_disabled');
    const perm = await Notification.requestPermission();
    if (perm !== 'granted') return 'Notifications are blocked in this browser.';
    const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    await navigator.serviceWorker.ready;
    const existing = await reg.pushManager.getSubscription();
    let sub: PushSubscription;
    try {
      sub = existing ?? (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64url(public_key) }));
    } catch (e) {
      throw new Error('This browser could not turn on notifications' + (e instanceof Error && e.message ? ` (${e.message}).` : '.'));
    }
    const json = sub.toJSON();
    await ok(
      this.api.PUT('/api/v1/push/subscriptions', {
        body: { endpoint: json.endpoint ?? '', keys: { p256dh: json.keys?.p256dh ?? '', auth: json.keys?.auth ?? '' } },
      }),
    );
    return 'Notifications are on.';
  }

  humanError(e: unknown): string {
    if (e instanceof ApiError) return e.message;
    if (e instanceof Error) return e.message;
    return humanRestError(String(e));
  }
}

function b64url(s: string): Uint8Array<ArrayBuffer> {
  const pad = '='.repeat((4 - (s.length % 4)) % 4);
  const raw = atob((s + pad).replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
