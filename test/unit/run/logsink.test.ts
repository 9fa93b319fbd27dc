import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { cappedFileWriter, sinkToFile } from '../../../src/run/logsink.js';

const dir = mkdtempSync(join(tmpdir(), 'vmwu-logsink-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

test('a guest stream past its cap reaches neither the log nor the live copy (the review\'s 100 MB over SSH)', async () => {
  const server = createServer();
  server.listen(join(dir, 's.sock'));
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const guest = connect(join(dir, 's.sock'));
  const [host] = await accepted;
  let forwarded = 0;
  const sunk = sinkToFile(host, join(dir, 'stdout.log'), MiB, (c) => { forwarded += c.length; });
  for (let i = 0; i < 8; i++) guest.write(Buffer.alloc(MiB / 2, 65));
  guest.end();
  const r = await sunk;
  server.close();
  assert.equal(forwarded, MiB, 'only the capped part is forwarded');
  assert.deepEqual(r, { bytes: MiB, truncated: true });
  const log = readFileSync(join(dir, 'stdout.log'), 'utf8');
  assert.equal(log.length, MiB + '\n[vmwu: output truncated at 1048576 bytes]\n'.length);
});

test('what arrives from a host is capped where it lands too', async () => {
  const path = join(dir, 'remote-stdout');
  await pipeline(Readable.from((function* () {
    for (let i = 0; i < 6; i++) yield Buffer.alloc(MiB / 2, 66);
  })()), cappedFileWriter(path, MiB));
  const text = readFileSync(path, 'utf8');
  assert.ok(text.startsWith('B'.repeat(MiB)));
  assert.match(text.slice(MiB), /^\n\[vmwu: output truncated at 1048576 bytes\]\n$/);
});
