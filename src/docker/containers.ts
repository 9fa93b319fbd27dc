import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { findRunByPrefix, getRun, type RunRecord } from '../run/records.js';
import { describeOwner, identityState, parseIdentity } from '../store/process-identity.js';
import type { Store } from '../store/store.js';

/**
 * Containers as `docker kill`, `stop` and `rm` find them: a `docker run` is a vmwu
 * run, known by its run id (what `--cidfile` holds) or by its `--name`. Names live
 * in the store (`docker/names/NAME` holds the run id), so any host that shares it
 * finds them; one is claimed with an exclusive create, so two runs cannot take it.
 */

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

const namesDir = (store: Store) => join(store.paths.root, 'docker', 'names');

export function checkContainerName(name: string): void {
  if (!NAME.test(name)) throw new VmwuError('DOCKER_OPTION', `docker run --name ${JSON.stringify(name)}: invalid container name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
}

/** Claims `name` for a run that is starting; `replace` records its id once it has one. */
export function claimContainerName(store: Store, name: string, runId: string, o: { replace?: boolean } = {}): void {
  checkContainerName(name);
  mkdirSync(namesDir(store), { recursive: true });
  try {
    writeFileSync(join(namesDir(store), name), runId, { flag: o.replace ? 'w' : 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    throw new VmwuError('DOCKER_NAME_TAKEN', `Conflict. The container name "/${name}" is already in use by container "${readName(store, name) ?? '?'}"`, `remove that container first: docker rm ${name}`);
  }
}

export function releaseContainerName(store: Store, name: string): void {
  rmSync(join(namesDir(store), name), { force: true });
}

function readName(store: Store, name: string): string | null {
  if (!NAME.test(name)) return null;
  try {
    return readFileSync(join(namesDir(store), name), 'utf8').trim();
  } catch {
    return null;
  }
}

/** The run a container name or (a prefix of) its id means. */
export function findContainer(store: Store, ref: string): { run: RunRecord; name: string | null } {
  const byName = readName(store, ref);
  if (byName) {
    const run = getRun(store.db, byName);
    if (run) return { run, name: ref };
  }
  const runs = /^[0-9a-f]{4,}$/.test(ref) ? findRunByPrefix(store.db, ref) : [];
  if (runs.length === 1) return { run: runs[0]!, name: null };
  if (runs.length > 1) throw new VmwuError('DOCKER_NO_CONTAINER', `Error response from daemon: multiple IDs found with provided prefix: ${ref}`);
  throw new VmwuError('DOCKER_NO_CONTAINER', `Error response from daemon: No such container: ${ref}`);
}

const isRunning = (run: RunRecord) => run.status === 'preparing' || run.status === 'running';

/**
 * Stops a running container: its vmwu gets SIGTERM and stops the VM as an
 * interrupted `vmwu run` does (the run ends `stopped`, nothing left running).
 * vmwu's own process is never sent SIGKILL: that would leave its QEMU behind.
 */
export function stopContainer(run: RunRecord): boolean {
  if (!isRunning(run)) return false;
  const state = identityState(run.owner);
  if (state === 'elsewhere' || state === 'foreign') {
    throw new VmwuError('DOCKER_ELSEWHERE', `container ${run.id} runs in ${describeOwner(run.owner)}`, 'stop it from that host');
  }
  if (state === 'dead') return false;
  try {
    process.kill(parseIdentity(run.owner).pid, 'SIGTERM');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
  return true;
}

/**
 * `docker rm`: forgets the container's name and its outputs. A running one only
 * with `force`, and only from the host it runs on: it is stopped, and its outputs
 * go once its vmwu has finished with them.
 */
export async function removeContainer(store: Store, ref: string, o: { force: boolean }): Promise<void> {
  const { run, name } = findContainer(store, ref);
  if (isRunning(run) && identityState(run.owner) !== 'dead') {
    if (!o.force) throw new VmwuError('DOCKER_RUNNING', `Error response from daemon: You cannot remove a running container ${run.id}. Stop the container before attempting removal or force remove`);
    stopContainer(run);
    for (let i = 0; i < 600 && identityState(run.owner) === 'alive'; i++) await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(run.outDir, { recursive: true, force: true });
  if (name) releaseContainerName(store, name);
}
