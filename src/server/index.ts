/** The dashboard and JSON API (`vmwu serve`), usable without the CLI: `startServer(store, {host, port, token, tls, allowHosts})`. */
export { startServer, startWorker } from './server.js';
export type { RunningServer, ServerOptions } from './server.js';
export { ChangeHub } from './hub.js';
export type { ChangeEvent } from './hub.js';
export { queryJobs, timings } from './queries.js';
export type { JobPage, JobQuery, JobRow, Timings } from './queries.js';
export { confinedFile, listFiles } from './files.js';
export { checkToken, drawToken, MIN_TOKEN_LENGTH } from './token.js';
export { baseUrl, isLoopback, planExposure } from './exposure.js';
export type { Exposure, ExposureRequest } from './exposure.js';
export type { TlsFiles } from './tls.js';
export { removeStaleUploads, STALE_UPLOAD_MS, uploadsDir } from './uploads.js';
