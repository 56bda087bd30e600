// A tiny observable store for React's useSyncExternalStore.
export class Store<S> {
  private listeners = new Set<() => void>();
  constructor(private state: S) {}
  get = (): S => this.state;
  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };
  set(update: Partial<S> | ((s: S) => Partial<S>)) {
    const patch = typeof update === 'function' ? update(this.state) : update;
    let changed = false;
    for (const k in patch) {
      if (patch[k] !== this.state[k]) {
        changed = true;
        break;
      }
    }
    if (!changed) return;
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l();
  }
}
