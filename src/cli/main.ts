import { Command, CommanderError } from 'commander';
import { EXIT_VMWU_ERROR, reportError } from './output.js';

/**
 * The CLI is thin: parse, call the library, print. Command modules are imported
 * lazily so that `vmwu run` does not pay for loading what it does not use.
 */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('vmwu')
    .description('virtual machine work units: run scientific jobs in real VMs')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();

  program.command('doctor')
    .description('check host tools, the accelerator verdict, the store and free disk')
    .option('--json', 'print one JSON object')
    .action(async (o) => (await import('./doctor.js')).doctor(o));

  const base = program.command('base').description('manage bases (bootable guest OS images)');
  base.command('build').argument('<kind>', 'tiny')
    .description('build a base rootless (tiny: Debian kernel + busybox-static + guest agent)')
    .option('--name <name>', 'register it under this name (default: the kind)')
    .option('--json', 'print the base as JSON')
    .action(async (kind, o) => (await import('./base.js')).baseBuild(kind, o));
  base.command('list').description('list bases').option('--json', 'print JSON')
    .option('--arch <arch>', 'only this architecture').option('--os <os>', 'only this OS')
    .action(async (o) => (await import('./base.js')).baseList(o));
  base.command('show').argument('<name>').description('show one base').option('--json', 'print JSON')
    .action(async (name, o) => (await import('./base.js')).baseShow(name, o));

  program.command('run')
    .description('run one job in a fresh VM: vmwu run --base tiny [options] -- COMMAND [ARGS…]')
    .argument('[command...]', 'the command to run in the guest (after --)')
    .requiredOption('--base <name>', 'base to boot (name or digest)')
    .option('--app <dir>', 'directory shown read-only at /app in the guest')
    .option('--input <path>', 'file or directory put in the work dir (repeatable)', collect, [])
    .option('--param <k=v>', 'parameter: exported as $k and substituted as ${k} in the command (repeatable)', collect, [])
    .option('--out <dir>', 'where outputs land (new or empty directory)')
    .option('--keep <glob>', 'keep only work-dir files matching (repeatable)', collect, [])
    .option('--memory <size>', 'guest memory, e.g. 256M')
    .option('--cpus <n>', 'guest vCPUs')
    .option('--timeout <duration>', 'walltime, e.g. 30s, 10m')
    .option('--max-output <size>', 'cap on the output archive, e.g. 2G')
    .option('--network', 'give the guest user-mode NAT networking (off by default)')
    .option('--json', 'print one JSON object with the result')
    .action(async (command, o) => (await import('./run.js')).run(command, o));

  program.command('logs')
    .description('print the stdout/stderr of a run (live with -f)')
    .argument('<run-id>', 'run id or unique prefix')
    .option('-f, --follow', 'keep printing while the run goes on')
    .option('--console', 'print the guest console instead')
    .action(async (id, o) => (await import('./logs.js')).logs(id, o));

  program.command('runs').description('list recent runs').option('--json', 'print JSON')
    .option('-n, --limit <n>', 'how many', '20')
    .action(async (o) => (await import('./logs.js')).runs(o));

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_VMWU_ERROR;
      return;
    }
    const json = argv.includes('--json');
    process.exitCode = reportError(e, json);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
