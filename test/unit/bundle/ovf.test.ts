import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Digest } from '../../../src/store/blobs.js';
import { cimOsType, OVF_NS, QCOW2_FORMAT_URI, renderOvf, shellJoin, xmlEscape, type OvfInput } from '../../../src/bundle/ovf.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const hex = (c: string) => c.repeat(64);

function input(over: Partial<OvfInput['unit']> = {}, withBase = true): OvfInput {
  return {
    unit: {
      name: 'demo', version: '1.0.0', digest: d('f'), run: ['sh', '-c', 'echo "a & b" > <out>'],
      params: { n: { default: '5', type: 'int' }, x: { default: '-2.0', type: 'float' }, who: { default: "it's <me>", type: 'string' } },
      resources: { memoryMiB: 768, cpus: 2 }, network: false, outputs: ['*.png'], ...over,
    },
    base: { name: 'tiny', digest: d('b'), arch: 'x86_64', os: 'linux', description: 'busybox -- on Debian', cmdline: 'console=ttyS0 quiet' },
    disks: [
      { digest: d('1'), size: 4096, virtualSize: 2 * 1024 ** 3, role: 'layer', kind: 'app', packages: [], included: true },
      { digest: d('2'), size: 8192, virtualSize: 2 * 1024 ** 3, role: 'layer', kind: 'packages', packages: ['gcc', 'make'], included: true },
      { digest: d('e'), size: 65536, virtualSize: 1024 ** 3, role: 'root', included: withBase },
    ],
    bootFiles: [
      { role: 'kernel', digest: d('c'), size: 100, included: withBase },
      { role: 'initrd', digest: d('d'), size: 200, included: withBase },
    ],
    memoryMiB: 768, cpus: 2, producer: 'vmwu test',
  };
}

/**
 * A small XML well-formedness check (no XML parser among the dependencies): tags
 * balance, attributes are quoted and unique, text holds no raw "<" or stray "&",
 * comments hold no "--". Returns the element names in document order.
 */
function wellFormed(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let rest = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const text = (t: string) => {
    assert.ok(!/&(?!(amp|lt|gt|quot|apos);)/.test(t), `stray & in ${JSON.stringify(t)}`);
  };
  while (rest.length) {
    const lt = rest.indexOf('<');
    if (lt === -1) {
      text(rest);
      assert.equal(rest.trim(), '', 'text after the root element');
      break;
    }
    text(rest.slice(0, lt));
    rest = rest.slice(lt);
    if (rest.startsWith('<!--')) {
      const end = rest.indexOf('-->');
      assert.ok(end > 0, 'unterminated comment');
      const body = rest.slice(4, end);
      assert.ok(!body.includes('--') && !body.endsWith('-'), `"--" inside a comment: ${body}`);
      rest = rest.slice(end + 3);
      continue;
    }
    const m = /^<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"<]*")*)\s*(\/?)>/.exec(rest);
    assert.ok(m, `malformed tag at ${JSON.stringify(rest.slice(0, 80))}`);
    const [all, close, name, attrs, selfClose] = m;
    const keys = [...attrs!.matchAll(/([A-Za-z_][\w:.-]*)="([^"]*)"/g)].map((a) => { text(a[2]!); return a[1]!; });
    assert.equal(new Set(keys).size, keys.length, `duplicate attribute in <${name}>`);
    if (close) {
      assert.equal(stack.pop(), name, `</${name}> does not close the open element`);
    } else {
      names.push(name!);
      if (!selfClose) stack.push(name!);
    }
    rest = rest.slice(all.length);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  return names;
}

const attr = (xml: string, el: string, name: string) => [...xml.matchAll(new RegExp(`<${el}\\b[^>]*\\b${name}="([^"]*)"`, 'g'))].map((m) => m[1]);

describe('OVF descriptor', () => {
  test('is well-formed OVF 2.0 with the sections in envelope order', () => {
    const xml = renderOvf(input());
    const names = wellFormed(xml);
    assert.equal(names[0], 'Envelope');
    assert.match(xml, new RegExp(`<Envelope xmlns="${OVF_NS}" xmlns:ovf="${OVF_NS}"`));
    const order = ['References', 'DiskSection', 'VirtualSystem', 'ProductSection', 'OperatingSystemSection', 'VirtualHardwareSection', 'vmwu:BootSection'];
    assert.deepEqual(order.map((n) => names.indexOf(n)), [...order.map((n) => names.indexOf(n))].sort((a, b) => a - b));
    assert.ok(order.every((n) => names.includes(n)));
    assert.match(xml, /<vmwu:BootSection ovf:required="false">/);
  });

  test('every disk and boot file is a File with an href into blobs/sha256, and disks carry the virtual size', () => {
    const xml = renderOvf(input());
    assert.deepEqual(attr(xml, 'File', 'ovf:href'), ['1', '2', 'e', 'c', 'd'].map((c) => `blobs/sha256/${hex(c)}`));
    assert.deepEqual(attr(xml, 'File', 'ovf:size'), ['4096', '8192', '65536', '100', '200']);
    assert.deepEqual(attr(xml, 'Disk', 'ovf:capacity'), [String(2 * 1024 ** 3), String(2 * 1024 ** 3), String(1024 ** 3)]);
    assert.deepEqual(attr(xml, 'Disk', 'ovf:format'), [QCOW2_FORMAT_URI, QCOW2_FORMAT_URI, QCOW2_FORMAT_URI]);
    const fileIds = attr(xml, 'File', 'ovf:id');
    assert.ok(attr(xml, 'Disk', 'ovf:fileRef').every((f) => fileIds.includes(f)), 'each Disk refers to a File');
  });

  test('the chain is noted parentRef-style, top first, and only the top disk is attached', () => {
    const xml = renderOvf(input());
    assert.match(xml, new RegExp(`disk-${hex('1').slice(0, 12)}: app layer; parentRef disk-${hex('2').slice(0, 12)} \\(qcow2 backing file "${hex('2')}"`));
    assert.match(xml, new RegExp(`disk-${hex('2').slice(0, 12)}: packages layer \\[gcc make\\]; parentRef disk-${hex('e').slice(0, 12)}`));
    assert.match(xml, new RegExp(`disk-${hex('e').slice(0, 12)}: root disk of base tiny; no parent`));
    assert.deepEqual([...xml.matchAll(/<rasd:HostResource>([^<]*)</g)].map((m) => m[1]), [`ovf:/disk/disk-${hex('1').slice(0, 12)}`]);
  });

  test('memory, cpus, OS type and the product (name, version, run command, params) are mapped', () => {
    const xml = renderOvf(input());
    assert.match(xml, /<rasd:ResourceType>3<\/rasd:ResourceType>\s*<rasd:VirtualQuantity>2<\/rasd:VirtualQuantity>/);
    assert.match(xml, /<rasd:AllocationUnits>byte \* 2\^20<\/rasd:AllocationUnits>[\s\S]*?<rasd:ResourceType>4<\/rasd:ResourceType>\s*<rasd:VirtualQuantity>768</);
    assert.match(xml, /<OperatingSystemSection ovf:id="101">/);
    assert.match(xml, /<Product>demo<\/Product>[\s\S]*<Version>1\.0\.0<\/Version>/);
    assert.deepEqual(attr(xml, 'Property', 'ovf:key'), ['run', 'param.n', 'param.x', 'param.who', 'outputs']);
    assert.deepEqual(attr(xml, 'Property', 'ovf:type'), ['string', 'sint64', 'real64', 'string', 'string']);
    assert.equal(attr(xml, 'Property', 'ovf:value')[0], xmlEscape(`sh -c 'echo "a & b" > <out>'`));
    assert.equal(attr(xml, 'Property', 'ovf:value')[3], 'it&apos;s &lt;me&gt;');
  });

  test('hostile text is escaped: names, run words, descriptions with "--" in comments', () => {
    const xml = renderOvf(input({ name: 'a&b', version: '1"<2', run: ['echo', '</Envelope>', '--', 'x\u0001y'] }));
    wellFormed(xml);
    assert.match(xml, /<Name>a&amp;b<\/Name>/);
    assert.ok(!xml.includes('\u0001'));
  });

  test('without the base, its files are still described, with a note that they are not in the bundle', () => {
    const xml = renderOvf(input({}, false));
    wellFormed(xml);
    assert.match(xml, /not in this bundle: the base tiny must already be in the importing store/);
    assert.match(xml, /not in this bundle: the kernel of base tiny/);
    assert.equal(attr(xml, 'File', 'ovf:href').length, 5);
  });

  test('network only when the unit asks for it; a unit without a run command says so', () => {
    assert.ok(!renderOvf(input()).includes('NetworkSection'));
    const net = renderOvf(input({ network: true, run: null }));
    wellFormed(net);
    assert.match(net, /<NetworkSection>[\s\S]*<Network ovf:name="user">/);
    assert.match(net, /<rasd:Connection>user<\/rasd:Connection>[\s\S]*<rasd:ResourceType>10</);
    assert.equal(attr(net, 'Property', 'ovf:value')[0], '');
  });

  test('helpers: shell quoting and CIM OS types', () => {
    assert.equal(shellJoin(['/app/run.sh', '${n}', 'a b', "it's", '']), `/app/run.sh \${n} 'a b' 'it'\\''s' ''`);
    assert.deepEqual(cimOsType('linux', 'x86_64'), { id: 101, name: 'Linux 64-Bit' });
    assert.deepEqual(cimOsType('linux', 'i686'), { id: 36, name: 'LINUX' });
    assert.equal(cimOsType('freebsd', 'x86_64').id, 1);
  });
});
