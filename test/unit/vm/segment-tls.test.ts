import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Duplex } from 'node:stream';
import { connectToHub, listenForVms } from '../../../src/vm/segment-tls.js';

const token = 'ab'.repeat(16);

test('a VM holding the job\'s token joins as the VM it names, over TLS; a wrong token gets no handshake', async () => {
  const attached: { k: number; s: Duplex }[] = [];
  const l = await listenForVms(token, (k, s) => attached.push({ k, s }));
  try {
    const c = await connectToHub('127.0.0.1', l.port, token, 2);
    c.write('frame');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(attached.map((a) => a.k), [2]);
    const got = await new Promise<string>((resolve) => attached[0]!.s.once('data', (b: Buffer) => resolve(b.toString())));
    assert.equal(got, 'frame');
    await assert.rejects(connectToHub('127.0.0.1', l.port, 'cd'.repeat(16), 1));
    assert.equal(attached.length, 1, 'the wrong key joined nothing');
    c.destroy();
  } finally {
    for (const a of attached) a.s.destroy();
    l.close();
  }
});
