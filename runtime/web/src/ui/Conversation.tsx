import {
  lazy,
  Suspense,
  memo,
  useContext,
  useCallback,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  type ClipboardEvent,
  type DragEvent,
  type KeyboardEvent,
} from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useApp, useCtl } from './hooks';
import * as M from '../state/messages';
import { tickFor, breakdown, type Tick } from '../state/receipts';
import { typers } from '../state/typing';
import { Avatar } from './Avatar';
import { Attachment, ImageViewer } from './Attachment';
import { OverlayCtx, ReplyCtx, JumpCtx, EditCtx, type Overlay } from './overlay';
import { Dialog, Icon } from './Dialog';
import { dayKey, formatDay, formatTime } from './format';
import { humanFrameError } from '../api/errors';
import { applyMention, mentionQuery, mentionSegments, suggestMentions, ROOM_MENTION, type Candidate } from '../state/mentions';

const GROUP_MS = 5 * 60_000;

type Row =
  | { kind: 'date'; key: string; label: string }
  | { kind: 'new'; key: string }
  | { kind: 'msg'; key: string; m: M.Msg; head: boolean; tail: boolean };

function buildRows(list: readonly M.Msg[], newAfter: number, me: string): Row[] {
  const rows: Row[] = [];
  let prev: M.Msg | undefined;
  let newPlaced = false;
  for (let i = 0; i < list.length; i++) {
    const m = list[i]!;
    const day = dayKey(m.createdAt);
    const newDay = !prev || dayKey(prev.createdAt) !== day;
    if (newDay)
      rows.push({
        kind: 'date',
        key: 'd:' + day + ':' + (m.seq ?? m.clientId),
        label: formatDay(m.createdAt),
      });
    let isNew = false;
    if (!newPlaced && m.seq !== undefined && m.seq > newAfter && m.senderId !== me && !m.hidden) {
      rows.push({ kind: 'new', key: 'new' });
      newPlaced = true;
      isNew = true;
    }
    const head =
      newDay ||
      isNew ||
      !prev ||
      prev.senderId !== m.senderId ||
      prev.hidden !== m.hidden ||
      Date.parse(m.createdAt) - Date.parse(prev.createdAt) > GROUP_MS;
    if (!head) {
      const last = rows[rows.length - 1];
      if (last?.kind === 'msg') rows[rows.length - 1] = { ...last, tail: false };
    }
    rows.push({ kind: 'msg', key: 'm:' + M.msgKey(m), m, head, tail: true });
    prev = m;
  }
  return rows;
}

export function Conversation({ roomId }: { roomId: string }) {
  const ctl = useCtl();
  const room = useApp((s) => s.rooms[roomId]);
  useApp((s) => s.members[roomId]);
  useApp((s) => s.users);
  const blocked = useApp((s) => s.blocked);
  const [details, setDetails] = useState(false);
  const [dragging, setDragging] = useState(false);
  const [overlay, setOverlay] = useState<Overlay>(null);
  const [replyTo, setReplyTo] = useState<string | null>(null);
  const reply = useMemo(() => ({ replyTo, setReplyTo }), [replyTo]);
  const [editing, setEditing] = useState<string | null>(null);
  const edit = useMemo(() => ({ editing, setEditing }), [editing]);
  useEffect(() => {
    setReplyTo(null);
    setEditing(null);
  }, [roomId]);
  const me = useApp((s) => s.me?.id ?? '');
  const owner = room?.room.kind === 'group' && room.room.owner_id === me;
  const name = ctl.roomName(roomId);
  const peer = room?.room.kind === 'direct' ? ctl.dmPeer(roomId) : undefined;
  const online = useApp((s) => (peer ? (s.presence[peer] ?? false) : false));
  const members = useApp((s) => s.members[roomId]);
  const subtitle =
    room?.room.kind === 'direct'
      ? peer && blocked[peer]
        ? 'Blocked'
        : online
          ? 'online'
          : 'offline'
      : members
        ? `${members.length} member${members.length === 1 ? '' : 's'}`
        : '';

  function onDrop(e: DragEvent) {
    e.preventDefault();
    setDragging(false);
    const files = Array.from(e.dataTransfer.files);
    if (files.length) ctl.uploadFiles(roomId, files);
  }

  return (
    <main
      className={'conversation' + (dragging ? ' dragging' : '')}
      aria-labelledby="conv-title"
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes('Files')) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target) setDragging(false);
      }}
      onDrop={onDrop}
    >
      <header className="conv-head">
        <button type="button" className="icon-btn back" aria-label="Back to conversations" onClick={() => (location.hash = '#/')}>
          <Icon name="back" />
        </button>
        <span className="room-avatar">
          <Avatar userId={peer} name={name} />
          {peer && <span className={'dot ' + (online ? 'online' : 'offline')} aria-hidden="true" />}
        </span>
        <div className="conv-title">
          <h2 id="conv-title">{name}</h2>
          <p className={'conv-sub' + (online ? ' is-online' : '')}>{subtitle}</p>
        </div>
        <button type="button" className="icon-btn" aria-label="Room details" onClick={() => setDetails(true)}>
          <Icon name="info" />
        </button>
      </header>
      <ReplyCtx.Provider value={reply}>
        <OverlayCtx.Provider value={setOverlay}>
          <EditCtx.Provider value={edit}>
            <MessageList key={roomId} roomId={roomId} />
          </EditCtx.Provider>
        </OverlayCtx.Provider>
        {overlay?.kind === 'image' && <ImageViewer fileId={overlay.fileId} onClose={() => setOverlay(null)} />}
        {overlay?.kind === 'receipts' && (
          <ReceiptInfo roomId={overlay.roomId} seq={overlay.seq} others={overlay.others} onClose={() => setOverlay(null)} />
        )}
        {overlay?.kind === 'actions' && (
          <MessageActions
            onClose={() => setOverlay(null)}
            deleted={overlay.deleted}
            canEdit={overlay.mine && overlay.canEdit}
            canDelete={overlay.mine || owner}
            onReply={() => {
              setReplyTo(overlay.serverId);
              setOverlay(null);
            }}
            onEdit={() => {
              setEditing(overlay.serverId);
              setOverlay(null);
            }}
            onDelete={() => setOverlay({ kind: 'delete', roomId: overlay.roomId, serverId: overlay.serverId })}
            onReact={() => setOverlay({ kind: 'react', roomId: overlay.roomId, serverId: overlay.serverId })}
          />
        )}
        {overlay?.kind === 'react' && (
          <ReactionPicker
            onClose={() => setOverlay(null)}
            onPick={(emoji) => {
              void ctl.react(overlay.roomId, overlay.serverId, emoji);
              setOverlay(null);
            }}
          />
        )}
        {overlay?.kind === 'delete' && (
          <ConfirmDelete
            onClose={() => setOverlay(null)}
            onConfirm={() => {
              void ctl.deleteMessage(overlay.roomId, overlay.serverId);
              setOverlay(null);
            }}
          />
        )}
        <TypingLine roomId={roomId} />
        <Uploads roomId={roomId} />
        {peer && blocked[peer] ? (
          <div className="blocked-bar">
            <span>You blocked {name}.</span>
            <button
              type="button"
              className="secondary"
              onClick={() => ctl.unblock(peer).catch((e: unknown) => ctl.notify(ctl.humanError(e)))}
            >
              Unblock
            </button>
          </div>
        ) : (
          <Composer roomId={roomId} />
        )}
      </ReplyCtx.Provider>
      {dragging && (
        <div className="drop-hint" aria-hidden="true">
          Drop files to send them
        </div>
      )}
      {details && <LazyDetails roomId={roomId} onClose={() => setDetails(false)} />}
    </main>
  );
}

const RoomDetails = lazy(() => import('./RoomDetails'));
function LazyDetails(props: { roomId: string; onClose: () => void }) {
  return (
    <Suspense fallback={null}>
      <RoomDetails {...props} />
    </Suspense>
  );
}

function MessageList({ roomId }: { roomId: string }) {
  const ctl = useCtl();
  const timeline = useApp((s) => s.timelines[roomId]) ?? M.emptyTimeline;
  const newAfter = useApp((s) => s.newAfter[roomId] ?? Number.MAX_SAFE_INTEGER);
  const loadingOlder = useApp((s) => s.loadingOlder[roomId] ?? false);
  const me = useApp((s) => s.me?.id ?? '');
  const list = useMemo(() => M.entries(timeline), [timeline]);
  const rows = useMemo(() => buildRows(list, newAfter, me), [list, newAfter, me]);
  const scrollRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const anchor = useRef<{ key: string; offset: number } | null>(null);
  const [away, setAway] = useState(false);

  const v = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: (i) => (rows[i]?.kind === 'msg' ? 52 : 40),
    getItemKey: (i) => rows[i]?.key ?? i,
    overscan: 8,
    paddingStart: 8,
    paddingEnd: 8,
  });

  const scrollToBottom = useCallback(() => {
    const el = scrollRef.current;
    if (!el || rows.length === 0) return;
    v.scrollToIndex(rows.length - 1, { align: 'end' });
    requestAnimationFrame(() => {
      if (atBottom.current && scrollRef.current) scrollRef.current.scrollTop = scrollRef.current.scrollHeight;
    });
  }, [v, rows.length]);

  // Keep the view where it was when older pages are prepended; stick to the bottom otherwise.
  const firstKey = rows[0]?.key;
  const lastKey = rows[rows.length - 1]?.key;
  const prevFirst = useRef(firstKey);
  useLayoutEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    if (prevFirst.current !== firstKey && prevFirst.current !== undefined && anchor.current && !atBottom.current) {
      const idx = rows.findIndex((r) => r.key === anchor.current!.key);
      const item = idx >= 0 ? v.measurementsCache[idx] : undefined;
      if (item) el.scrollTop = item.start - anchor.current.offset;
    } else if (atBottom.current) {
      scrollToBottom();
    }
    prevFirst.current = firstKey;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [firstKey, lastKey, rows.length]);

  // My own new message always brings the view down.
  const lastMine = list.length > 0 && list[list.length - 1]!.senderId === me && list[list.length - 1]!.seq === undefined;
  useEffect(() => {
    if (lastMine) {
      atBottom.current = true;
      scrollToBottom();
    }
  }, [lastMine, lastKey, scrollToBottom]);

  useEffect(() => {
    ctl.setReading(true);
  }, [ctl]);

  // Images have no size until they load: keep the bottom in view when one grows the list.
  useEffect(() => {
    const onMedia = () => {
      if (atBottom.current) scrollToBottom();
    };
    window.addEventListener('parley:media', onMedia);
    return () => window.removeEventListener('parley:media', onMedia);
  }, [scrollToBottom]);

  function onScroll() {
    const el = scrollRef.current;
    if (!el) return;
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
    if (bottom !== atBottom.current) {
      atBottom.current = bottom;
      ctl.setReading(bottom);
    } else if (bottom) ctl.markReadActive();
    setAway(el.scrollHeight - el.scrollTop - el.clientHeight > 600);
    const items = v.getVirtualItems();
    const firstVisible = items.find((it) => it.end > el.scrollTop && rows[it.index]?.kind === 'msg');
    if (firstVisible)
      anchor.current = {
        key: String(firstVisible.key),
        offset: firstVisible.start - el.scrollTop,
      };
    if (el.scrollTop < 600 && timeline.hasMoreBefore && timeline.loaded) void ctl.loadOlder(roomId);
  }

  const items = v.getVirtualItems();
  const cursors = useApp((s) => s.cursors[roomId]);
  const members = useApp((s) => s.members[roomId]);
  const kind = useApp((s) => s.rooms[roomId]?.room.kind ?? 'group');
  const others = useMemo(() => (members ?? Object.keys(cursors ?? {})).filter((u) => u !== me), [members, cursors, me]);

  const unread = useApp((s) => s.rooms[roomId]?.unread ?? 0);

  // Jumping to a replied message: reveal it (older pages load), then scroll it into the
  // middle of the view once its row exists, focus it and flash it.
  const wantSeq = useRef<number | null>(null);
  const [jumpTick, setJumpTick] = useState(0);
  const [flash, setFlash] = useState<number | null>(null);
  const jump = useCallback(
    (serverId: string) => {
      atBottom.current = false;
      ctl.setReading(false);
      void ctl.reveal(roomId, serverId).then((seq) => {
        if (seq === null) {
          ctl.notify('That message is no longer available.');
          return;
        }
        wantSeq.current = seq;
        setJumpTick((x) => x + 1);
      });
    },
    [ctl, roomId],
  );
  // A search result opened this room at one of its messages: jump there once the latest
  // page is in (reveal pages back from it).
  const jumpWanted = useApp((s) => s.jumpRequest?.roomId === roomId);
  const loadedForJump = useApp((s) => s.timelines[roomId]?.loaded ?? false);
  useEffect(() => {
    if (!jumpWanted || !loadedForJump) return;
    const serverId = ctl.takeJump(roomId);
    if (serverId) jump(serverId);
  }, [jumpWanted, loadedForJump, ctl, roomId, jump]);
  useEffect(() => {
    const seq = wantSeq.current;
    if (seq === null) return;
    const idx = rows.findIndex((r) => r.kind === 'msg' && r.m.seq === seq);
    if (idx < 0) return;
    wantSeq.current = null;
    // Not at the bottom any more, whatever a scroll event queued before the jump said: a
    // pending scroll-to-bottom (the room was just opened) must not pull the view back.
    atBottom.current = false;
    v.scrollToIndex(idx, { align: 'center' });
    setFlash(seq);
    requestAnimationFrame(() =>
      requestAnimationFrame(() => scrollRef.current?.querySelector<HTMLElement>(`.msg[data-seq="${seq}"]`)?.focus({ preventScroll: true })),
    );
    const t = setTimeout(() => setFlash(null), 2000);
    return () => clearTimeout(t);
  }, [rows, jumpTick, v]);

  return (
    <JumpCtx.Provider value={jump}>
      {away && (
        <button
          type="button"
          className="jump"
          aria-label={unread > 0 ? `Scroll to newest, ${unread} unread` : 'Scroll to newest'}
          onClick={() => {
            atBottom.current = true;
            setAway(false);
            scrollToBottom();
            ctl.setReading(true);
          }}
        >
          <Icon name="down" />
          {unread > 0 && (
            <span className="jump-badge" aria-hidden="true">
              {unread > 99 ? '99+' : unread}
            </span>
          )}
        </button>
      )}
      <div
        className="msg-scroll"
        ref={scrollRef}
        role="log"
        aria-label="Messages"
        aria-busy={loadingOlder || !timeline.loaded}
        tabIndex={0}
        onScroll={onScroll}
      >
        {!timeline.loaded && rows.length === 0 && <p className="msg-loading">Loading messages…</p>}
        {timeline.loaded && rows.length === 0 && <p className="msg-loading">No messages yet. Say hello!</p>}
        <div className="msg-canvas" style={{ height: v.getTotalSize() }}>
          <div className="msg-window" style={{ transform: `translateY(${items[0]?.start ?? 0}px)` }}>
            {items.map((it) => {
              const row = rows[it.index]!;
              return (
                <div key={it.key} data-index={it.index} ref={v.measureElement} className="row">
                  {row.kind === 'date' ? (
                    <div className="sep date-sep" role="separator" aria-label={row.label}>
                      <span>{row.label}</span>
                    </div>
                  ) : row.kind === 'new' ? (
                    <div className="sep new-sep" role="separator" aria-label="New messages">
                      <span>New messages</span>
                    </div>
                  ) : (
                    <MessageRow
                      flash={flash !== null && row.m.seq === flash}
                      m={row.m}
                      head={row.head}
                      tail={row.tail}
                      mine={row.m.senderId === me}
                      group={kind === 'group'}
                      tick={row.m.senderId === me ? tickFor(row.m.seq, row.m.status, cursors ?? {}, others) : undefined}
                      others={others}
                    />
                  )}
                </div>
              );
            })}
          </div>
        </div>
      </div>
    </JumpCtx.Provider>
  );
}

const tickIcon: Record<Tick, string> = {
  Sending: 'clock',
  Sent: 'check',
  Delivered: 'checks',
  Read: 'checks',
  Failed: 'alert',
};

const MessageRow = memo(function MessageRow(props: {
  m: M.Msg;
  head: boolean;
  tail: boolean;
  mine: boolean;
  group: boolean;
  tick?: Tick;
  others: readonly string[];
  flash?: boolean;
}) {
  const { m, mine } = props;
  const ctl = useCtl();
  const senderName = useApp((s) => s.users[m.senderId]?.display_name || s.users[m.senderId]?.username || '');
  const mentionsMe = useApp((s) => !!s.me?.id && !!m.mentions?.includes(s.me.id));
  const openOverlay = useContext(OverlayCtx);
  const press = useRef<ReturnType<typeof setTimeout> | null>(null);
  const actionable = m.serverId !== undefined && m.seq !== undefined && !m.deleted;
  const openActions = () =>
    m.serverId &&
    openOverlay({ kind: 'actions', roomId: m.roomId, serverId: m.serverId, mine, canEdit: !!m.body, deleted: !!m.deleted });
  const { editing, setEditing } = useContext(EditCtx);
  const isEditing = editing !== null && editing === m.serverId && !m.deleted;
  const cancelPress = () => {
    if (press.current) clearTimeout(press.current);
    press.current = null;
  };
  if (m.hidden)
    return (
      <div className="msg hidden-msg" data-seq={m.seq} data-client-id={m.clientId}>
        <span>Message from a blocked person</span>
      </div>
    );
  if (m.deleted)
    return (
      <div className={'msg deleted-msg' + (mine ? ' mine' : ' theirs') + (props.flash ? ' flash' : '')} data-seq={m.seq} data-client-id={m.clientId} tabIndex={-1}>
        {props.group && !mine && <span className="msg-avatar" />}
        <div className="bubble tombstone">
          <span>Message deleted</span>
        </div>
      </div>
    );
  const showName = props.group && !mine && props.head;
  const tick = props.tick;
  return (
    <div
      className={
        'msg' +
        (mine ? ' mine' : ' theirs') +
        (props.head ? ' head' : '') +
        (props.tail ? ' tail' : '') +
        (props.flash ? ' flash' : '') +
        (mentionsMe ? ' mentions-me' : '')
      }
      data-seq={m.seq}
      data-client-id={m.clientId}
      data-mentions-me={mentionsMe ? 'true' : undefined}
      tabIndex={-1}
      onPointerDown={(e) => {
        // Long-press on touch screens opens the message's actions.
        if (e.pointerType !== 'touch' || !actionable) return;
        cancelPress();
        press.current = setTimeout(() => {
          press.current = null;
          openActions();
        }, 500);
      }}
      onPointerUp={cancelPress}
      onPointerCancel={cancelPress}
      onPointerMove={(e) => {
        if (e.pointerType === 'touch' && (Math.abs(e.movementX) > 4 || Math.abs(e.movementY) > 4)) cancelPress();
      }}
      onContextMenu={(e) => {
        if (press.current !== null || (e.nativeEvent as PointerEvent).pointerType === 'touch') e.preventDefault();
      }}
    >
      {props.group && !mine && (
        <span className="msg-avatar">{props.tail ? <Avatar userId={m.senderId} name={senderName || '?'} size="sm" /> : null}</span>
      )}
      <div className={'bubble' + (m.status === 'failed' ? ' failed' : '') + (!m.body && m.attachments.length > 0 ? ' media' : '')}>
        {showName && <div className={'msg-sender'}>{senderName || 'Someone'}</div>}
        {m.replyTo && <Quote roomId={m.roomId} serverId={m.replyTo} />}
        {m.attachments.length > 0 && (
          <div className="atts">
            {m.attachments.map((a) => (
              <Attachment key={a} id={a} />
            ))}
          </div>
        )}
        {isEditing ? (
          <InlineEdit
            initial={m.body}
            onCancel={() => setEditing(null)}
            onSave={(body) => {
              setEditing(null);
              if (body.trim() && body !== m.body && m.serverId) void ctl.editMessage(m.roomId, m.serverId, body);
            }}
          />
        ) : (
          m.body && <MessageBody m={m} />
        )}
        <Reactions m={m} />
        <div className="msg-meta">
          {m.editedAt && <span className="edited">edited</span>}
          <time dateTime={m.createdAt}>{formatTime(m.createdAt)}</time>
          {tick &&
            (props.group && m.seq !== undefined && tick !== 'Failed' ? (
              <button
                type="button"
                className={'tick tick-' + tick.toLowerCase()}
                aria-label={tick}
                onClick={() =>
                  m.seq !== undefined &&
                  openOverlay({
                    kind: 'receipts',
                    roomId: m.roomId,
                    seq: m.seq,
                    others: props.others,
                  })
                }
              >
                <Icon name={tickIcon[tick]} />
              </button>
            ) : (
              <span className={'tick tick-' + tick.toLowerCase()} role="img" aria-label={tick}>
                <Icon name={tickIcon[tick]} />
              </span>
            ))}
        </div>
        {m.status === 'failed' && (
          <div className="failed-bar">
            <span>
              {m.error === 'timeout' ? 'Not sent: no answer from the server.' : 'Not sent: ' + humanFrameError(m.error ?? 'internal')}
            </span>
            <button type="button" onClick={() => ctl.retry(m.roomId, m.clientId)}>
              Retry
            </button>
            <button type="button" onClick={() => ctl.discard(m.roomId, m.clientId)}>
              Discard
            </button>
          </div>
        )}
      </div>
      {actionable && (
        <button type="button" className="msg-actions-btn" aria-label="Message actions" onClick={openActions}>
          <Icon name="more" />
        </button>
      )}
    </div>
  );
});

/** The quote of a replied message inside a reply: a button that jumps to the original. */
/** A message's text, its resolved mentions as styled spans (text segments, never HTML). */
function MessageBody({ m }: { m: M.Msg }) {
  const me = useApp((s) => s.me?.id ?? '');
  const users = useApp((s) => s.users);
  const segs = useMemo(() => mentionSegments(m.body, m.mentions, (id) => users[id]?.username, me), [m.body, m.mentions, users, me]);
  return (
    <div className="msg-body">
      {segs.map((s, i) =>
        s.mention ? (
          <span key={i} className={'mention' + (s.mention.me ? ' mention-me' : '')}>
            {s.text}
          </span>
        ) : (
          s.text
        ),
      )}
    </div>
  );
}

function Quote({ roomId, serverId }: { roomId: string; serverId: string }) {
  const ctl = useCtl();
  const jump = useContext(JumpCtx);
  const timeline = useApp((s) => s.timelines[roomId]);
  const quoted = useApp((s) => s.quoted);
  const q = useMemo(() => M.quoteOf(timeline, quoted, serverId), [timeline, quoted, serverId]);
  useApp((s) => s.users);
  useEffect(() => {
    if (q.kind === 'missing') void ctl.fetchQuoted(roomId, serverId);
  }, [q.kind, ctl, roomId, serverId]);
  return (
    <button type="button" className="quote" aria-label="Go to replied message" onClick={() => jump(serverId)}>
      <QuoteText q={q} />
    </button>
  );
}

function QuoteText({ q }: { q: M.Quote }) {
  const ctl = useCtl();
  if (q.kind === 'missing') return <span className="quote-body">…</span>;
  if (q.kind === 'gone' || (q.kind === 'loaded' && q.msg.deleted)) return <span className="quote-body muted">Message deleted</span>;
  const m = q.msg;
  return (
    <>
      <span className="quote-sender">{ctl.userName(m.senderId)}</span>
      <span className="quote-body">
        {m.hidden ? 'Message from a blocked person' : m.body || (m.attachments.length > 0 ? 'Attachment' : '')}
      </span>
    </>
  );
}

/** The actions of one message (opened by its `Message actions` button or a long-press). */
function MessageActions(props: {
  onClose: () => void;
  deleted: boolean;
  canEdit: boolean;
  canDelete: boolean;
  onReply: () => void;
  onEdit: () => void;
  onDelete: () => void;
  onReact: () => void;
}) {
  return (
    <Dialog title="Message actions" onClose={props.onClose} className="actions-dialog">
      <div className="action-list">
        {!props.deleted && (
          <button type="button" className="action" onClick={props.onReply}>
            Reply
          </button>
        )}
        {!props.deleted && (
          <button type="button" className="action" onClick={props.onReact}>
            React
          </button>
        )}
        {!props.deleted && props.canEdit && (
          <button type="button" className="action" onClick={props.onEdit}>
            Edit
          </button>
        )}
        {!props.deleted && props.canDelete && (
          <button type="button" className="action danger" onClick={props.onDelete}>
            Delete
          </button>
        )}
      </div>
    </Dialog>
  );
}

const EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🙏', '🎉', '🔥', '👀', '✅', '👏', '😊', '🤔', '😍', '🙌', '💯', '😅', '👌', '🥳', '😎', '🤝', '💪', '👎', '🚀'];

/** The reaction picker: recently used emoji first, then a fixed set. */
function ReactionPicker({ onClose, onPick }: { onClose: () => void; onPick: (emoji: string) => void }) {
  const recent = useApp((s) => s.recentEmoji);
  const grid = (list: readonly string[]) => (
    <div className="emoji-grid">
      {list.map((e) => (
        <button key={e} type="button" className="emoji-btn" onClick={() => onPick(e)}>
          {e}
        </button>
      ))}
    </div>
  );
  return (
    <Dialog title="Add reaction" onClose={onClose} className="picker-dialog">
      {recent.length > 0 && (
        <section aria-label="Recent">
          <h3 className="picker-head">Recent</h3>
          {grid(recent)}
        </section>
      )}
      <section aria-label="All emoji">
        <h3 className="picker-head">Emoji</h3>
        {grid(EMOJI.filter((e) => !recent.includes(e)))}
      </section>
    </Dialog>
  );
}

function Reactions({ m }: { m: M.Msg }) {
  const ctl = useCtl();
  const me = useApp((s) => s.me?.id ?? '');
  const blocked = useApp((s) => s.blocked);
  const chips = M.visibleReactions(m.reactions, blocked, me);
  if (chips.length === 0 || !m.serverId) return null;
  const serverId = m.serverId;
  return (
    <div className="reactions">
      {chips.map((c) => (
        <button
          key={c.emoji}
          type="button"
          className={'chip' + (c.mine ? ' mine' : '')}
          aria-pressed={c.mine}
          aria-label={`${c.emoji} ${c.count}`}
          onClick={() => void ctl.react(m.roomId, serverId, c.emoji)}
        >
          <span aria-hidden="true">{c.emoji}</span>
          <span aria-hidden="true" className="chip-count">
            {c.count}
          </span>
        </button>
      ))}
    </div>
  );
}

function ConfirmDelete({ onClose, onConfirm }: { onClose: () => void; onConfirm: () => void }) {
  return (
    <Dialog title="Delete message" onClose={onClose} className="confirm-dialog">
      <p>Delete this message for everyone? Its text and files will be gone.</p>
      <div className="dialog-actions">
        <button type="button" className="secondary" onClick={onClose}>
          Cancel
        </button>
        <button type="button" className="danger" onClick={onConfirm}>
          Delete
        </button>
      </div>
    </Dialog>
  );
}

/** Inline editor of a message body: Enter saves, Shift+Enter breaks the line, Escape cancels. */
function InlineEdit({ initial, onSave, onCancel }: { initial: string; onSave: (body: string) => void; onCancel: () => void }) {
  const [text, setText] = useState(initial);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);
  return (
    <div className="inline-edit">
      <textarea
        ref={ref}
        aria-label="Edit message"
        rows={Math.min(6, Math.max(1, text.split('\n').length))}
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            e.preventDefault();
            e.stopPropagation();
            onCancel();
          } else if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
            e.preventDefault();
            onSave(text.replace(/\s+$/u, ''));
          }
        }}
      />
      <div className="inline-edit-actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="button" className="primary" disabled={!text.trim()} onClick={() => onSave(text.replace(/\s+$/u, ''))}>
          Save
        </button>
      </div>
    </div>
  );
}

function ReceiptInfo({ roomId, seq, others, onClose }: { roomId: string; seq: number; others: readonly string[]; onClose: () => void }) {
  const ctl = useCtl();
  const cursors = useApp((s) => s.cursors[roomId] ?? {});
  useApp((s) => s.users);
  const rows = breakdown(seq, cursors, others);
  const label = {
    read: 'Read',
    delivered: 'Delivered',
    sent: 'Not yet received',
  } as const;
  return (
    <Dialog title="Message info" onClose={onClose}>
      <ul className="receipt-list">
        {rows.map((r) => (
          <li key={r.user}>
            <Avatar userId={r.user} name={ctl.userName(r.user)} size="sm" />
            <span className="grow">{ctl.userName(r.user)}</span>
            <span className={'receipt-state ' + r.state}>{label[r.state]}</span>
          </li>
        ))}
      </ul>
    </Dialog>
  );
}

function TypingLine({ roomId }: { roomId: string }) {
  const ctl = useCtl();
  const typing = useApp((s) => s.typing);
  useApp((s) => s.users);
  const who = typers(typing, roomId, Date.now()).map((u) => ctl.userName(u));
  let text = '';
  if (who.length === 1) text = `${who[0]} is typing…`;
  else if (who.length === 2) text = `${who[0]} and ${who[1]} are typing…`;
  else if (who.length > 2) text = 'Several people are typing…';
  return (
    <div className="typing" role="status">
      {text}
    </div>
  );
}

function Uploads({ roomId }: { roomId: string }) {
  const uploads = useApp((s) => s.uploads).filter((u) => u.roomId === roomId);
  if (uploads.length === 0) return null;
  return (
    <ul className="uploads">
      {uploads.map((u) => (
        <li key={u.key} className="upload">
          <Icon name="file" />
          <span className="upload-name">{u.name}</span>
          <progress aria-label={'Uploading ' + u.name} max={u.total || 1} value={u.loaded} />
          <button type="button" className="icon-btn sm" aria-label="Cancel upload" onClick={u.cancel}>
            <Icon name="close" />
          </button>
        </li>
      ))}
    </ul>
  );
}

function Composer({ roomId }: { roomId: string }) {
  const ctl = useCtl();
  const [text, setText] = useState('');
  const fileRef = useRef<HTMLInputElement>(null);
  const taRef = useRef<HTMLTextAreaElement>(null);
  const drafts = useRef(new Map<string, string>());
  const { replyTo, setReplyTo } = useContext(ReplyCtx);
  const mention = useMentionAutocomplete(roomId, text, taRef, (next) => {
    setText(next);
    drafts.current.set(roomId, next);
  });

  useEffect(() => {
    setText(drafts.current.get(roomId) ?? '');
    if (window.matchMedia('(min-width: 768px)').matches) taRef.current?.focus();
  }, [roomId]);

  useEffect(() => {
    if (replyTo) taRef.current?.focus();
  }, [replyTo]);

  function submit() {
    if (!text.trim()) return;
    ctl.send(roomId, text, [], replyTo ?? undefined);
    setReplyTo(null);
    setText('');
    drafts.current.delete(roomId);
    taRef.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (mention.onKeyDown(e)) return;
    if (e.key === 'Escape' && replyTo) {
      e.preventDefault();
      setReplyTo(null);
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      submit();
    }
  }

  function onPaste(e: ClipboardEvent<HTMLTextAreaElement>) {
    const files = Array.from(e.clipboardData.files);
    if (files.length > 0) {
      e.preventDefault();
      ctl.uploadFiles(roomId, files);
    }
  }

  return (
    <>
      {replyTo && (
        <div className="reply-bar">
          <Icon name="reply" />
          <div className="reply-target">
            <span className="reply-label">Replying to</span>
            <ReplyTarget roomId={roomId} serverId={replyTo} />
          </div>
          <button
            type="button"
            className="icon-btn sm"
            aria-label="Cancel reply"
            onClick={() => {
              setReplyTo(null);
              taRef.current?.focus();
            }}
          >
            <Icon name="close" />
          </button>
        </div>
      )}
      <form
        className="composer"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <button type="button" className="icon-btn" aria-label="Attach file" onClick={() => fileRef.current?.click()}>
          <Icon name="attach" />
        </button>
        <input
          ref={fileRef}
          type="file"
          multiple
          hidden
          tabIndex={-1}
          aria-hidden="true"
          onChange={(e) => {
            const files = Array.from(e.target.files ?? []);
            e.target.value = '';
            if (files.length) ctl.uploadFiles(roomId, files);
          }}
        />
        {mention.listbox}
        <textarea
          ref={taRef}
          aria-label="Message"
          placeholder="Message"
          rows={1}
          value={text}
          aria-autocomplete="list"
          aria-controls={mention.open ? mention.listId : undefined}
          aria-activedescendant={mention.activeId}
          onChange={(e) => {
            setText(e.target.value);
            drafts.current.set(roomId, e.target.value);
            mention.onCaret(e.target.value, e.target.selectionStart, true);
            if (e.target.value) ctl.typingNow(roomId);
          }}
          onSelect={(e) => mention.onCaret(e.currentTarget.value, e.currentTarget.selectionStart, false)}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
        />
        <button type="submit" className="send-btn" aria-label="Send" disabled={!text.trim()}>
          <Icon name="send" />
        </button>
      </form>
    </>
  );
}

/**
 * The composer's "@" autocomplete: while the caret ends an "@query", a listbox of the
 * room's members (and "@room" for the owner of a group) whose username or name starts
 * with it; arrow keys move, Enter or Tab picks, Escape closes.
 */
function useMentionAutocomplete(
  roomId: string,
  text: string,
  taRef: React.RefObject<HTMLTextAreaElement | null>,
  setText: (text: string) => void,
) {
  const me = useApp((s) => s.me?.id ?? '');
  const members = useApp((s) => s.members[roomId]);
  const users = useApp((s) => s.users);
  const room = useApp((s) => s.rooms[roomId]?.room);
  const [q, setQ] = useState<{ start: number; caret: number; query: string } | null>(null);
  const [active, setActive] = useState(0);
  const [dismissed, setDismissed] = useState<number | null>(null);
  const caretAfter = useRef<number | null>(null);
  const listId = 'mention-suggestions-' + roomId;

  const candidates = useMemo(() => {
    const out: Candidate[] = [];
    for (const id of members ?? []) {
      const u = users[id];
      if (id === me || !u?.username) continue;
      out.push({ id, username: u.username, displayName: u.display_name || u.username });
    }
    if (room?.kind === 'group' && room.owner_id === me) out.push({ id: ROOM_MENTION, username: ROOM_MENTION, displayName: 'Everyone in this room' });
    return out;
  }, [members, users, me, room]);
  const suggestions = useMemo(() => (q && q.start !== dismissed ? suggestMentions(candidates, q.query) : []), [q, dismissed, candidates]);
  const open = suggestions.length > 0;

  useEffect(() => {
    setQ(null);
    setDismissed(null);
  }, [roomId]);

  useLayoutEffect(() => {
    const at = caretAfter.current;
    if (at !== null && taRef.current) {
      caretAfter.current = null;
      taRef.current.setSelectionRange(at, at);
    }
  }, [text, taRef]);

  /** The text or the caret changed; typing (typed) reopens suggestions closed by Escape. */
  function onCaret(value: string, caret: number | null, typed: boolean) {
    const found = caret === null ? null : mentionQuery(value, caret);
    if (found && q?.start !== found.start) setActive(0);
    setQ(found && caret !== null ? { start: found.start, caret, query: found.query } : null);
    if (typed || !found || found.start !== dismissed) setDismissed(null);
  }

  function pick(c: Candidate) {
    if (!q) return;
    const next = applyMention(text, q.start, q.caret, c.username);
    caretAfter.current = next.caret;
    setQ(null);
    setText(next.text);
    taRef.current?.focus();
  }

  function onKeyDown(e: KeyboardEvent<HTMLTextAreaElement>): boolean {
    if (!open || e.nativeEvent.isComposing) return false;
    const i = Math.min(active, suggestions.length - 1);
    switch (e.key) {
      case 'ArrowDown':
        setActive((i + 1) % suggestions.length);
        break;
      case 'ArrowUp':
        setActive((i - 1 + suggestions.length) % suggestions.length);
        break;
      case 'Enter':
      case 'Tab':
        if (e.shiftKey) return false;
        pick(suggestions[i]!);
        break;
      case 'Escape':
        setDismissed(q?.start ?? null);
        break;
      default:
        return false;
    }
    e.preventDefault();
    return true;
  }

  const current = Math.min(active, suggestions.length - 1);
  const optionId = (i: number) => `${listId}-${i}`;
  const listbox = open ? (
    <ul className="mention-suggestions" role="listbox" id={listId} aria-label="Mention suggestions">
      {suggestions.map((c, i) => (
        <li
          key={c.id}
          id={optionId(i)}
          role="option"
          aria-selected={i === current}
          onMouseDown={(e) => {
            e.preventDefault(); // keep the textbox focused
            pick(c);
          }}
        >
          <span>{c.displayName}</span>
          <span className="handle">@{c.username}</span>
        </li>
      ))}
    </ul>
  ) : null;
  return { open, listbox, listId, activeId: open ? optionId(current) : undefined, onKeyDown, onCaret };
}

function ReplyTarget({ roomId, serverId }: { roomId: string; serverId: string }) {
  const timeline = useApp((s) => s.timelines[roomId]);
  const quoted = useApp((s) => s.quoted);
  useApp((s) => s.users);
  const q = useMemo(() => M.quoteOf(timeline, quoted, serverId), [timeline, quoted, serverId]);
  return (
    <span className="reply-quote">
      <QuoteText q={q} />
    </span>
  );
}
