import type { UnitRecord } from '../unit/records.js';
import type { Base } from '../store/bases.js';
import { hexOf, type Digest } from '../store/blobs.js';
import { blobEntryName } from './manifest.js';

/**
 * unit.ovf: an OVF 2.0 descriptor of the unit, so tools that know OVF can see what
 * is inside a bundle (GVA specified one and never built it). vmwu itself reads only
 * manifest.json; this file is generated from the same facts and checked by digest.
 */

export interface OvfDisk {
  digest: Digest;
  /** File size in bytes. */
  size: number;
  /** Guest-visible capacity (qcow2 virtual size) in bytes. */
  virtualSize: number;
  role: 'layer' | 'root';
  kind?: 'packages' | 'app' | 'image';
  packages?: string[];
  /** False when the file is not in this bundle (the base root of a bundle without --with-base). */
  included: boolean;
}

export interface OvfBootFile {
  role: 'kernel' | 'initrd';
  digest: Digest;
  size: number;
  included: boolean;
}

export interface OvfInput {
  unit: Pick<UnitRecord, 'name' | 'version' | 'digest' | 'run' | 'params' | 'resources' | 'network' | 'outputs'>;
  base: Pick<Base, 'name' | 'digest' | 'arch' | 'os' | 'description' | 'cmdline'>;
  /** The chain top first, the base root last. */
  disks: OvfDisk[];
  bootFiles: OvfBootFile[];
  /** Resolved resources: the unit's own, else vmwu's defaults. */
  memoryMiB: number;
  cpus: number;
  producer: string;
}

export const OVF_NS = 'http://schemas.dmtf.org/ovf/envelope/2';
export const VMWU_OVF_NS = 'urn:vmwu:ovf:1';
export const QCOW2_FORMAT_URI = 'https://www.qemu.org/docs/master/interop/qcow2.html';
const RASD_NS = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData';
const VSSD_NS = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData';

/** XML 1.0 forbids most control characters even as character references, so they are replaced. */
function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g, '\ufffd');
}

export function xmlEscape(s: string): string {
  return clean(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A comment may not contain "--" nor end with "-". */
function comment(s: string): string {
  return `<!-- ${clean(s).replace(/-(?=-)/g, '- ').replace(/-$/, '- ')} -->`;
}

/** The run command as a shell would need it typed, for people and tools that show one string. */
export function shellJoin(argv: string[]): string {
  return argv.map((w) => (/^[A-Za-z0-9_/.:=@%+,${}-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * CIM_OperatingSystem OSType values (the OVF ovf:id of OperatingSystemSection):
 * 36 LINUX, 101 Linux 64-Bit, 1 Other.
 */
export function cimOsType(os: string, arch: string): { id: number; name: string } {
  if (os.toLowerCase() !== 'linux') return { id: 1, name: 'Other' };
  return /64/.test(arch) ? { id: 101, name: 'Linux 64-Bit' } : { id: 36, name: 'LINUX' };
}

const OVF_PROPERTY_TYPES: Record<string, string> = { int: 'sint64', float: 'real64', bool: 'boolean', string: 'string' };

const short = (d: string) => hexOf(d).slice(0, 12);
const diskId = (d: string) => `disk-${short(d)}`;
const fileId = (d: string) => `file-${short(d)}`;

export function renderOvf(input: OvfInput): string {
  const { unit, base, disks } = input;
  const a = (s: string | number) => xmlEscape(String(s));
  const top = disks[0];
  const L: string[] = [];
  L.push('<?xml version="1.0" encoding="UTF-8"?>');
  L.push(comment(`vmwu bundle descriptor for ${unit.name}:${unit.version} (${unit.digest}), written by ${input.producer}. `
    + 'manifest.json in the same bundle is authoritative; this OVF describes the same VM for other tools.'));
  L.push(`<Envelope xmlns="${OVF_NS}" xmlns:ovf="${OVF_NS}" xmlns:rasd="${RASD_NS}" xmlns:vssd="${VSSD_NS}"`
    + ` xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vmwu="${VMWU_OVF_NS}" xml:lang="en-US">`);

  L.push('  <References>');
  for (const d of disks) {
    if (!d.included) L.push(`    ${comment(`not in this bundle: the base ${base.name} must already be in the importing store (found there by digest ${d.digest})`)}`);
    L.push(`    <File ovf:id="${fileId(d.digest)}" ovf:href="${blobEntryName(d.digest)}" ovf:size="${d.size}"/>`);
  }
  for (const f of input.bootFiles) {
    if (!f.included) L.push(`    ${comment(`not in this bundle: the ${f.role} of base ${base.name}`)}`);
    L.push(`    <File ovf:id="${fileId(f.digest)}" ovf:href="${blobEntryName(f.digest)}" ovf:size="${f.size}"/>`);
  }
  L.push('  </References>');

  L.push('  <DiskSection>');
  L.push('    <Info>Virtual disks: a qcow2 backing chain. Only the top disk is attached; each layer names its parent as a backing file in the same directory.</Info>');
  disks.forEach((d, i) => {
    const parent = disks[i + 1];
    const what = d.role === 'root' ? `root disk of base ${base.name}` : `${d.kind ?? 'layer'} layer${d.packages?.length ? ` [${d.packages.join(' ')}]` : ''}`;
    L.push(`    ${comment(parent
      ? `${diskId(d.digest)}: ${what}; parentRef ${diskId(parent.digest)} (qcow2 backing file "${hexOf(parent.digest)}", format qcow2)`
      : `${diskId(d.digest)}: ${what}; no parent (bottom of the chain)`)}`);
    L.push(`    <Disk ovf:diskId="${diskId(d.digest)}" ovf:fileRef="${fileId(d.digest)}" ovf:capacity="${d.virtualSize}"`
      + ` ovf:capacityAllocationUnits="byte" ovf:populatedSize="${d.size}" ovf:format="${QCOW2_FORMAT_URI}"/>`);
  });
  L.push('  </DiskSection>');

  if (unit.network) {
    L.push('  <NetworkSection>');
    L.push('    <Info>The job asked for network access</Info>');
    L.push('    <Network ovf:name="user"><Description>QEMU user-mode NAT; vmwu gives no network unless asked</Description></Network>');
    L.push('  </NetworkSection>');
  }

  const sysId = `${unit.name}-${unit.version}`;
  L.push(`  <VirtualSystem ovf:id="${a(sysId)}">`);
  L.push(`    <Info>A vmwu work unit: boots, runs one job, hands back its results and powers off</Info>`);
  L.push(`    <Name>${a(unit.name)}</Name>`);

  L.push('    <ProductSection ovf:class="vmwu">');
  L.push('      <Info>The work unit and the job it runs</Info>');
  L.push(`      <Product>${a(unit.name)}</Product>`);
  L.push('      <Vendor>vmwu</Vendor>');
  L.push(`      <Version>${a(unit.version)}</Version>`);
  L.push(`      <FullVersion>${a(`${unit.version} (${unit.digest})`)}</FullVersion>`);
  const run = unit.run ? shellJoin(unit.run) : '';
  L.push(`      <Property ovf:key="run" ovf:type="string" ovf:value="${a(run)}" ovf:userConfigurable="false">`);
  L.push('        <Label>Run command</Label>');
  L.push(`        <Description>${unit.run ? 'Runs in the job work dir; ${name} is replaced by the parameter of that name, which is also exported as $name' : 'None: a command is given at run time'}</Description>`);
  L.push('      </Property>');
  for (const [k, p] of Object.entries(unit.params)) {
    L.push(`      <Property ovf:key="param.${a(k)}" ovf:type="${OVF_PROPERTY_TYPES[p.type] ?? 'string'}" ovf:value="${a(p.default)}" ovf:userConfigurable="true">`);
    L.push(`        <Label>${a(k)}</Label>`);
    L.push(`        <Description>Job parameter (${a(p.type)}); set with vmwu run --param ${a(k)}=VALUE</Description>`);
    L.push('      </Property>');
  }
  if (unit.outputs.length) {
    L.push(`      <Property ovf:key="outputs" ovf:type="string" ovf:value="${a(unit.outputs.join(' '))}" ovf:userConfigurable="false">`);
    L.push('        <Label>Outputs</Label>');
    L.push('        <Description>Globs of the work-dir files handed back</Description>');
    L.push('      </Property>');
  }
  L.push('    </ProductSection>');

  const os = cimOsType(base.os, base.arch);
  L.push(`    <OperatingSystemSection ovf:id="${os.id}">`);
  L.push(`      <Info>Guest operating system (CIM OSType ${os.id}: ${os.name})</Info>`);
  L.push(`      <Description>${a(`${base.os} ${base.arch}: ${base.description || base.name}`)}</Description>`);
  L.push('    </OperatingSystemSection>');

  // rasd elements stay in alphabetical order: the CIM schema declares them as a sequence.
  const item = (fields: [string, string | number][]) => {
    L.push('      <Item>');
    for (const [k, v] of fields) L.push(`        <rasd:${k}>${a(v)}</rasd:${k}>`);
    L.push('      </Item>');
  };
  L.push('    <VirtualHardwareSection>');
  L.push('      <Info>Virtual hardware: QEMU microvm, virtio-mmio devices, direct kernel boot</Info>');
  L.push('      <System>');
  L.push('        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>');
  L.push('        <vssd:InstanceID>0</vssd:InstanceID>');
  L.push(`        <vssd:VirtualSystemIdentifier>${a(sysId)}</vssd:VirtualSystemIdentifier>`);
  L.push('        <vssd:VirtualSystemType>qemu-microvm</vssd:VirtualSystemType>');
  L.push('      </System>');
  item([['AllocationUnits', 'hertz * 10^6'], ['Description', 'Number of virtual CPUs'], ['ElementName', `${input.cpus} virtual CPU(s)`],
    ['InstanceID', 1], ['ResourceType', 3], ['VirtualQuantity', input.cpus]]);
  item([['AllocationUnits', 'byte * 2^20'], ['Description', 'Memory size'], ['ElementName', `${input.memoryMiB} MB of memory`],
    ['InstanceID', 2], ['ResourceType', 4], ['VirtualQuantity', input.memoryMiB]]);
  item([['Description', 'virtio block devices on virtio-mmio'], ['ElementName', 'virtio0'], ['InstanceID', 3],
    ['ResourceSubType', 'virtio'], ['ResourceType', 20]]);
  if (top) {
    item([['AddressOnParent', 0], ['Description', 'Root disk: the top of the chain (writes go to a throw-away overlay per run)'], ['ElementName', 'root'],
      ['HostResource', `ovf:/disk/${diskId(top.digest)}`], ['InstanceID', 4], ['Parent', 3], ['ResourceType', 17]]);
  }
  if (unit.network) {
    item([['AutomaticAllocation', 'true'], ['Connection', 'user'], ['Description', 'virtio network'], ['ElementName', 'net0'],
      ['InstanceID', 5], ['ResourceSubType', 'virtio'], ['ResourceType', 10]]);
  }
  L.push('    </VirtualHardwareSection>');

  // Direct kernel boot has no OVF section; required="false" lets other tools skip this one.
  const kernel = input.bootFiles.find((f) => f.role === 'kernel');
  const initrd = input.bootFiles.find((f) => f.role === 'initrd');
  L.push('    <vmwu:BootSection ovf:required="false">');
  L.push(`      <Info>Direct kernel boot of base ${a(base.name)} (${a(base.digest)})</Info>`);
  if (kernel) L.push(`      <vmwu:Kernel ovf:fileRef="${fileId(kernel.digest)}" vmwu:digest="${kernel.digest}"/>`);
  if (initrd) L.push(`      <vmwu:Initrd ovf:fileRef="${fileId(initrd.digest)}" vmwu:digest="${initrd.digest}"/>`);
  L.push(`      <vmwu:Cmdline>${a(base.cmdline)}</vmwu:Cmdline>`);
  L.push('    </vmwu:BootSection>');
  L.push('  </VirtualSystem>');
  L.push('</Envelope>');
  return L.join('\n') + '\n';
}
