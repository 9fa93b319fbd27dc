/**
 * Job descriptions for batch systems vmwu does not drive itself: an HTCondor
 * submit description or a PBS/TORQUE array script. Each job of the cluster runs
 * `vmwu sweep-task --task TASKS/N.json`, which boots that one job's work unit from
 * the task file `vmwu export-jobs` wrote and reports back as files in the
 * experiment's directory (on a shared filesystem), exactly as a Slurm array task
 * does; `vmwu resume` ingests the reports. Pure text generation: golden-file tested.
 */
import { checkNoControlChars, displayValue, escapeControlChars } from '../control-chars.js';
import { nodeCheckLines } from './node-checks.js';
import { arrayRanges, shq, slurmResources, slurmTime } from './slurm/batch-script.js';

export type ExportFormat = 'htcondor' | 'pbs';

export interface ExportInput {
  experiment: string;
  /** Jobs to run (normally those not yet done), with their parameters, for the comments. */
  jobs: { index: number; params: Record<string, string> }[];
  resources: { memoryMiB: number; cpus: number; timeoutMs: number };
  /** The task files, `<job>.json` each. */
  tasksDir: string;
  node: string;
  vmwuJs: string;
  /** Directory for the batch system's output files. */
  logDir: string;
}

/**
 * One comment line per job. Values are escaped (newlines as \n, spaces quoted), so
 * none can end the comment: the next line of a PBS script is a shell command and
 * the next line of a submit description a command such as `queue`.
 */
function paramsComment(jobs: ExportInput['jobs']): string[] {
  const out = ['# job  parameters'];
  for (const j of jobs) out.push(`# ${String(j.index).padEnd(4)} ${Object.entries(j.params).map(([k, v]) => `${escapeControlChars(k)}=${displayValue(v)}`).join(' ')}`.trimEnd());
  return out;
}

/**
 * Paths written bare into directive lines (`executable = …`, `#PBS -o …`), where
 * neither format can escape a line break. They come from the store's location and
 * the node binary, so one with a control character is refused, not written.
 */
function checkPaths(x: ExportInput, format: string): void {
  const hint = `move the store (VMWU_HOME) to a path without control characters: a ${format} file cannot hold them`;
  for (const [what, v] of [['the experiment', x.experiment], ['the node binary', x.node], ['vmwu', x.vmwuJs], ['the task directory', x.tasksDir], ['the log directory', x.logDir]] as const) {
    checkNoControlChars(v, `${format}: ${what}`, 'BAD_PATH', hint);
  }
}

/** HTCondor's quoting for values inside a double-quoted `arguments`/`environment` string: ' is doubled, " is repeated. */
function condorQuote(s: string): string {
  return `'${s.replace(/'/g, "''").replace(/"/g, '""')}'`;
}

export function htcondorSubmit(x: ExportInput): string {
  checkPaths(x, 'HTCondor submit description');
  const r = slurmResources(x.resources);
  return [
    `# vmwu: experiment ${x.experiment}, ${x.jobs.length} job${x.jobs.length === 1 ? '' : 's'}, as an HTCondor submit description.`,
    `# Submit with: condor_submit ${x.experiment}.sub`,
    '# Each job runs `vmwu sweep-task` on the execute node, which boots the job\'s work unit from its',
    '# task file and reports back as files; the vmwu store must be on a filesystem shared with the nodes.',
    `# Then \`vmwu resume ${x.experiment}\` records the results.`,
    ...paramsComment(x.jobs),
    '',
    'universe            = vanilla',
    `executable          = ${x.node}`,
    'transfer_executable = false',
    `arguments           = "${condorQuote(x.vmwuJs)} sweep-task --task ${condorQuote(`${x.tasksDir}/`)}$(job).json"`,
    `request_cpus        = ${r.cpus}`,
    `request_memory      = ${r.memMiB}M`,
    `# walltime + boot margin: ${slurmTime(r.timeMin)}`,
    `allowed_job_duration = ${r.timeMin * 60}`,
    'requirements        = (OpSys == "LINUX") && (Arch == "X86_64")',
    `output              = ${x.logDir}/job-$(job).out`,
    `error               = ${x.logDir}/job-$(job).err`,
    `log                 = ${x.logDir}/condor.log`,
    'should_transfer_files = NO',
    '',
    'queue job from (',
    ...x.jobs.map((j) => `  ${j.index}`),
    ')',
    '',
  ].join('\n');
}

export function pbsScript(x: ExportInput): string {
  checkPaths(x, 'PBS script');
  const r = slurmResources(x.resources);
  const ids = x.jobs.map((j) => j.index);
  return [
    '#!/bin/sh',
    `# vmwu: experiment ${x.experiment}, ${x.jobs.length} job${x.jobs.length === 1 ? '' : 's'}, as a PBS/TORQUE array job.`,
    `# Submit with: qsub ${x.experiment}.pbs   (PBS Pro: replace the -t line by "#PBS -J ${ids[0] ?? 1}-${ids[ids.length - 1] ?? 1}"; jobs already done are skipped)`,
    '# Each array member runs `vmwu sweep-task`, which boots the job\'s work unit from its task file and',
    `# reports back as files; the vmwu store must be on a filesystem shared with the nodes. Then \`vmwu resume ${x.experiment}\`.`,
    ...paramsComment(x.jobs),
    `#PBS -N ${`vmwu-${x.experiment}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 15)}`,
    `#PBS -t ${arrayRanges(ids)}`,
    `#PBS -l nodes=1:ppn=${r.cpus},mem=${r.memMiB}mb,walltime=${slurmTime(r.timeMin).replace(/^(\d+)-/, (_, d: string) => `${d}:`)}`,
    `#PBS -o ${x.logDir}/`,
    `#PBS -e ${x.logDir}/`,
    '',
    'set -u',
    `NODE=${shq(x.node)}`,
    `VMWU_JS=${shq(x.vmwuJs)}`,
    'JOB=${PBS_ARRAYID:-${PBS_ARRAY_INDEX:-}}',
    'host=$(hostname)',
    'if [ -z "$JOB" ]; then echo "vmwu: no PBS_ARRAYID/PBS_ARRAY_INDEX: submit this script as an array job" >&2; exit 3; fi',
    `TASK=${shq(x.tasksDir)}/$JOB.json`,
    ...nodeCheckLines(),
    'if [ ! -f "$TASK" ]; then echo "vmwu: node $host does not see the task file $TASK (the vmwu store must be on a shared filesystem)" >&2; exit 3; fi',
    'exec "$NODE" "$VMWU_JS" sweep-task --task "$TASK" --batch-id "${PBS_JOBID:-}"',
    '',
  ].join('\n');
}

export function exportJobsText(format: ExportFormat, x: ExportInput): string {
  return format === 'htcondor' ? htcondorSubmit(x) : pbsScript(x);
}
