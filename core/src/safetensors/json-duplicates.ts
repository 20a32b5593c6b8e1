/**
 * JSON.parse keeps the last of two equal keys without a word, so a header that names a tensor
 * twice would silently lose one entry. This scanner walks text that JSON.parse has already
 * accepted and reports the first key that repeats within one object.
 */

export interface DuplicateKey {
  key: string;
  /** Keys of the enclosing objects, outermost first ([] for the top level). */
  path: string[];
}

interface Frame {
  isObject: boolean;
  keys: Set<string>;
  expectKey: boolean;
  lastKey: string;
  /** Key under which this frame sits in its parent object. */
  name: string;
}

/** Returns the first duplicate key, or null. `text` must be valid JSON. */
export function findDuplicateKey(text: string): DuplicateKey | null {
  const stack: Frame[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      while (i < text.length) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      const top = stack[stack.length - 1];
      if (top !== undefined && top.isObject && top.expectKey) {
        // Decode escapes, so that "a" and "\u0061" count as the same key.
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        if (top.keys.has(key)) {
          return { key, path: stack.slice(1).map((f) => f.name) };
        }
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i++;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      const name = parent === undefined ? '' : parent.isObject ? parent.lastKey : `${parent.name}[]`;
      stack.push({ isObject: c === 0x7b, keys: new Set(), expectKey: c === 0x7b, lastKey: '', name });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top !== undefined && top.isObject) top.expectKey = true;
    }
    i++;
  }
  return null;
}
