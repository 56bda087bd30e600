import { createContext } from 'react';

/**
 * Dialogs opened from a message row live in the conversation, not in the row: the list is
 * virtualised, and a row scrolled out of the DOM must not take its open dialog with it.
 */
export type Overlay =
  { kind: 'image'; fileId: string } | { kind: 'receipts'; roomId: string; seq: number; others: readonly string[] } | null;
export const OverlayCtx = createContext<(o: Overlay) => void>(() => {});
