// Per-user persistence in localStorage, shared by the user's tabs: every change re-reads first.
// Nothing runs on import.

export function createStorage(user, storage = globalThis.localStorage) {
  const prefix = `papo:v1:${user.toLowerCase()}:`;
  return {
    prefix,
    key: (name) => prefix + name,
    // Return the stored value of `name`, or fallback when it is missing, unreadable or storage is disabled.
    read(name, fallback) {
      try {
        const raw = storage.getItem(prefix + name);
        return raw ? JSON.parse(raw) : fallback;
      } catch { return fallback; }
    },
    write(name, value) {
      try { storage.setItem(prefix + name, JSON.stringify(value)); } catch { /* full or disabled */ }
    },
    // Apply fn to the freshest stored value, store and return the result.
    change(name, fallback, fn) {
      const value = fn(this.read(name, fallback));
      this.write(name, value);
      return value;
    },
    // Remove every item of this user (those named in keep stay); return how many went.
    clear(keep = []) {
      const kept = new Set(keep.map((name) => prefix + name));
      const mine = [];
      try {
        for (let i = 0; i < storage.length; i += 1) {
          const key = storage.key(i);
          if (key && key.startsWith(prefix) && !kept.has(key)) mine.push(key);
        }
        for (const key of mine) storage.removeItem(key);
      } catch { return 0; }
      return mine.length;
    },
    // Return the name a storage event's key refers to, or null when it is not one of this user's.
    nameOf(key) {
      return key && key.startsWith(prefix) ? key.slice(prefix.length) : null;
    },
  };
}

// Make a Storage in memory, for tests and for browsers that refuse localStorage.
export function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => { items.set(key, String(value)); },
    removeItem: (key) => { items.delete(key); },
    key: (index) => [...items.keys()][index] ?? null,
    get length() { return items.size; },
  };
}
