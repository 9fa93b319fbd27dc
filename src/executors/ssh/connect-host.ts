import { VmwuError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import { SshConnection } from './connection.js';
import { updateHostInfo, type HostRecord } from './hosts.js';
import type { Connector } from './pool-host.js';
import { okSchema, REMOTE_PROTOCOL, remoteInfoSchema } from './protocol.js';

/** The pool's connections to its hosts: SSH with the recorded host key, a vmwu of this protocol with QEMU there, what it says of itself recorded, and the job dirs a lost connection left there collected. */

export function hostConnector(db: Db, timeoutMs: number): Connector<SshConnection> {
  return async (record: HostRecord, learned) => {
    const conn = await SshConnection.open(record, { hostKey: record.hostKey, timeoutMs });
    try {
      const i = await conn.json(['info'], remoteInfoSchema);
      if (i.protocol !== REMOTE_PROTOCOL) throw new VmwuError('REMOTE_PROTOCOL', `host ${record.name} runs vmwu ${i.version} (protocol ${i.protocol}); this vmwu speaks ${REMOTE_PROTOCOL}`, 'install the same vmwu release on the host');
      if (!i.qemu) throw new VmwuError('NO_QEMU', `host ${record.name} has no QEMU`, 'install qemu-system-x86 there');
      updateHostInfo(db, record.name, i);
      learned(i);
      // Job dirs a lost connection left there.
      await conn.json(['gc'], okSchema);
    } catch (e) {
      conn.close();
      throw e;
    }
    return conn;
  };
}
