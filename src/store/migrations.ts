/**
 * Schema migrations, applied in order inside one transaction each. Never edit a
 * released migration: add a new one, so stores created by older versions upgrade.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'bases, runs, settings',
    sql: `
      CREATE TABLE bases (
        name        TEXT PRIMARY KEY,
        digest      TEXT NOT NULL UNIQUE,
        arch        TEXT NOT NULL,
        os          TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        boot        TEXT NOT NULL CHECK (boot IN ('kernel', 'bios')),
        kernel      TEXT,
        initrd      TEXT,
        root        TEXT NOT NULL,
        cmdline     TEXT NOT NULL DEFAULT '',
        size        INTEGER NOT NULL,
        virtual_size INTEGER NOT NULL,
        manifest    TEXT NOT NULL,
        created_at  TEXT NOT NULL
      );
      CREATE INDEX bases_arch_os ON bases (arch, os);

      CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL,
        finished_at TEXT,
        base        TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('preparing', 'running', 'succeeded', 'failed', 'timeout', 'error')),
        exit_code   INTEGER,
        accel       TEXT,
        argv        TEXT NOT NULL,
        params      TEXT NOT NULL,
        resources   TEXT NOT NULL,
        out_dir     TEXT NOT NULL,
        run_dir     TEXT NOT NULL,
        owner       TEXT NOT NULL,
        qemu_pid    INTEGER,
        phases      TEXT,
        total_ms    INTEGER,
        error       TEXT
      );
      CREATE INDEX runs_status ON runs (status);

      CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'layers and units',
    sql: `
      -- A layer is a qcow2 overlay holding what one build step installed. Its
      -- parent is a base root or another layer (by blob digest).
      CREATE TABLE layers (
        digest      TEXT PRIMARY KEY,
        parent      TEXT NOT NULL,
        base_digest TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('packages', 'app')),
        packages    TEXT NOT NULL,
        key         TEXT NOT NULL UNIQUE,
        size        INTEGER NOT NULL,
        created_at  TEXT NOT NULL
      );
      CREATE INDEX layers_base_kind ON layers (base_digest, kind);

      CREATE TABLE units (
        name        TEXT NOT NULL,
        version     TEXT NOT NULL,
        digest      TEXT NOT NULL,
        base        TEXT NOT NULL,
        base_digest TEXT NOT NULL,
        top         TEXT NOT NULL,
        build_key   TEXT NOT NULL,
        manifest    TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        PRIMARY KEY (name, version)
      );
      CREATE INDEX units_build_key ON units (build_key);
    `,
  },
];
