import { createContext } from 'react';

/**
 * Dialogs opened from a message row live in the conversation, not in the row: the list is
 * virtualised, and a row scrolled out of the DOM must not take its open dialog with it.
 */
export type Overlay =
  | { kind: 'image'; fileId: string }
  | { kind: 'receipts'; roomId: string; seq: number; others: readonly string[] }
  | { kind: 'actions'; roomId: string; serverId: string; mine: boolean; canEdit: boolean; deleted: boolean }
  | { kind: 'delete'; roomId: string; serverId: string }
  | { kind: 'react'; roomId: string; serverId: string }
  | null;
export const OverlayCtx = createContext<(o: Overlay) => void>(() => {});

/** The conversation's reply target (a server id) and how rows and the composer change it. */
export const ReplyCtx = createContext<{ replyTo: string | null; setReplyTo: (id: string | null) => void }>({
  replyTo: null,
  setReplyTo: () => {},
});

/** Scrolls the message list to a message by server id (loading older pages when needed). */
export const JumpCtx = createContext<(serverId: string) => void>(() => {});

/** The message being edited inline (a server id), and how rows start and end editing. */
export const EditCtx = createContext<{ editing: string | null; setEditing: (id: string | null) => void }>({
  editing: null,
  setEditing: () => {},
});
