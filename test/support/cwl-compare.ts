/**
 * A conformance test's expected output against what the runner printed, as the CWL
 * project's cwltest compares them (cwltest is not packaged in Debian): "Any" matches
 * anything; a File or Directory matches on the end of its location and on each of
 * checksum, size, basename and secondaryFiles the test gives; everything else is
 * equal or not. Returns why it does not match, or null.
 */
export function cwlMismatch(expected: unknown, actual: unknown, path = 'output'): string | null {
  if (expected === 'Any') return null;
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return `${path}: expected ${expected.length} items, got ${JSON.stringify(actual)}`;
    for (let i = 0; i < expected.length; i++) {
      const m = cwlMismatch(expected[i], actual[i], `${path}[${i}]`);
      if (m) return m;
    }
    return null;
  }
  if (expected && typeof expected === 'object') {
    if (!actual || typeof actual !== 'object') return `${path}: expected an object, got ${JSON.stringify(actual)}`;
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    const isFile = e.class === 'File' || e.class === 'Directory';
    for (const [k, v] of Object.entries(e)) {
      if (isFile && k === 'location') {
        if (v !== 'Any' && !(typeof a.location === 'string' && a.location.endsWith(String(v)))) return `${path}.location: ${String(a.location)} does not end with ${String(v)}`;
        continue;
      }
      if (isFile && k === 'path') continue;
      const m = cwlMismatch(v, a[k], `${path}.${k}`);
      if (m) return m;
    }
    if (!isFile) for (const k of Object.keys(a)) if (!(k in e)) return `${path}.${k}: not expected`;
    return null;
  }
  return expected === actual || (expected === null && actual === undefined) ? null : `${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}
