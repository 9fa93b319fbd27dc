import { VmwuError } from '../errors.js';

/**
 * Dataset names (`vmwu data add PATH --name NAME[:VERSION]`). Pure. A name is
 * also the directory a job sees it in (/data/NAME), so it is kept to a safe
 * alphabet; the version defaults to "latest".
 */

export interface DatasetRef {
  name: string;
  version: string;
}

export const DATASET_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const DATASET_VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
export const DEFAULT_DATA_VERSION = 'latest';

/** `NAME[:VERSION]` → its parts; `what` names where it came from (an option, a file and field) in the error. */
export function parseDatasetRef(text: string, what = '--name'): DatasetRef {
  const i = text.indexOf(':');
  const name = i < 0 ? text : text.slice(0, i);
  const version = i < 0 ? DEFAULT_DATA_VERSION : text.slice(i + 1);
  if (!DATASET_NAME.test(name)) {
    throw new VmwuError('BAD_DATASET_NAME', `${what}: ${JSON.stringify(name)} is not a dataset name`,
      'use lower-case letters, digits, ".", "_" and "-" (it becomes /data/NAME in the guest), at most 64, starting with a letter or digit');
  }
  if (!DATASET_VERSION.test(version)) throw new VmwuError('BAD_DATASET_NAME', `${what}: version ${JSON.stringify(version)} is not valid`, 'use letters, digits, ".", "_", "+" and "-"');
  return { name, version };
}

export function formatDatasetRef(r: DatasetRef): string {
  return `${r.name}:${r.version}`;
}
