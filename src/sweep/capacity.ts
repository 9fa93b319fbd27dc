/**
 * VMM's capacity rule: as many instances as there are cores for them and as fit in
 * 80 % of the memory that is free now, and never fewer than one (a sweep that cannot
 * run at all is a worse answer than a slow one).
 */
export interface CapacityInput {
  cores: number;
  availableMemMiB: number;
  jobMemoryMiB: number;
  jobCpus: number;
  /** Share of the free memory instances may take; the rest is for the host and QEMU itself. */
  memFraction?: number;
}

export interface Capacity {
  slots: number;
  byCores: number;
  byMemory: number;
  /** How the number was derived, for the user. */
  explain: string;
}

export function capacityRule(i: CapacityInput): Capacity {
  const frac = i.memFraction ?? 0.8;
  const byCores = Math.floor(Math.max(1, i.cores) / Math.max(1, i.jobCpus));
  const byMemory = Math.floor((Math.max(0, i.availableMemMiB) * frac) / Math.max(1, i.jobMemoryMiB));
  const slots = Math.max(1, Math.min(byCores, byMemory));
  const coresPart = i.jobCpus > 1 ? `floor(${i.cores} cores / ${i.jobCpus} vCPUs) = ${byCores}` : `${i.cores} cores`;
  const memPart = `floor(${frac} × ${Math.round(i.availableMemMiB)} MiB free / ${i.jobMemoryMiB} MiB) = ${byMemory}`;
  let explain = `min(${coresPart}, ${memPart}) = ${Math.min(byCores, byMemory)}`;
  if (Math.min(byCores, byMemory) < 1) explain += ', raised to 1';
  return { slots, byCores, byMemory, explain };
}
