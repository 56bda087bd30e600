import { createContext, useContext, useSyncExternalStore } from 'react';
import type { AppState, Controller } from '../app/controller';

export const Ctx = createContext<Controller | null>(null);

export function useCtl(): Controller {
  const c = useContext(Ctx);
  if (!c) throw new Error('no controller');
  return c;
}

export function useApp<T>(select: (s: AppState) => T): T {
  const c = useCtl();
  return useSyncExternalStore(c.store.subscribe, () => select(c.store.get()));
}
