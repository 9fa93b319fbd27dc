import type { Db } from '../store/db.js';
import { confinedFile, listFiles, readHead } from './files.js';
import { MAX_PREVIEW_BYTES, PREVIEW_NAME, sniffImage, SNIFF_BYTES, type ImageType } from './image-preview.js';

/**
 * An experiment's gallery: the image outputs of its finished jobs, a page at a time.
 * A page reads the database for a bounded run of finished jobs (keyset paging on the
 * job index, so page 1000 costs what page 1 does) and looks only in those jobs' out
 * dirs, at a bounded number of files each: an experiment of 100 000 jobs is never
 * walked whole.
 */

export interface GalleryImage {
  job: number;
  attempt: number;
  /** Inside the attempt's out dir, with `/`. */
  path: string;
  size: number;
  /** Sniffed from the bytes. */
  type: ImageType;
}

export interface GalleryPage {
  images: GalleryImage[];
  /** Jobs that have finished (succeeded or failed), the ones a gallery looks at. */
  finishedJobs: number;
  /** Jobs this page looked at. */
  scannedJobs: number;
  /** The `after` of the next page, or null when no finished job comes after this page. */
  next: number | null;
}

export interface GalleryOptions {
  /** Only jobs with a larger index (the previous page's `next`). */
  after?: number;
  /** Finished jobs to look at (default 50, at most 200). */
  jobs?: number;
  /** Images on a page (default and at most 200); a job's images are never split across pages. */
  maxImages?: number;
  /** Images taken from one job (default 50). */
  perJob?: number;
  /** Files listed in one job's out dir (default 1000). */
  filesPerJob?: number;
}

export const GALLERY_MAX_IMAGES = 200;

const clamp = (v: number | undefined, dflt: number, max: number) => Math.min(Math.max(Math.trunc(Number.isFinite(v) ? v! : dflt), 1), max);

/** The image outputs of one attempt's out dir: offered by name, kept only when the bytes are an image. */
export function imagesIn(outDir: string, o: { perJob: number; filesPerJob: number }): { path: string; size: number; type: ImageType }[] {
  const out: { path: string; size: number; type: ImageType }[] = [];
  for (const f of listFiles(outDir, o.filesPerJob)) {
    if (out.length >= o.perJob) break;
    if (!PREVIEW_NAME.test(f.path) || f.size > MAX_PREVIEW_BYTES) continue;
    // The same confinement as a download: a path that leaves the out dir is never opened.
    const real = confinedFile(outDir, f.path.split('/').map(encodeURIComponent).join('/'));
    const got = real && readHead(real, SNIFF_BYTES);
    const type = got ? sniffImage(got.head) : undefined;
    if (got && type) out.push({ path: f.path, size: got.size, type });
  }
  return out;
}

export function galleryPage(db: Db, experiment: string, o: GalleryOptions = {}): GalleryPage {
  const jobs = clamp(o.jobs, 50, 200);
  const maxImages = clamp(o.maxImages, GALLERY_MAX_IMAGES, GALLERY_MAX_IMAGES);
  const perJob = Math.min(clamp(o.perJob, 50, GALLERY_MAX_IMAGES), maxImages);
  const filesPerJob = clamp(o.filesPerJob, 1000, 10_000);
  const after = Math.max(Math.trunc(Number.isFinite(o.after) ? o.after! : 0), 0);
  const finishedJobs = (db.prepare(`SELECT COUNT(*) AS n FROM experiment_jobs WHERE experiment = ? AND state IN ('succeeded', 'failed')`)
    .get(experiment) as { n: number }).n;
  // The latest attempt of each finished job, in index order from `after` on.
  const rows = db.prepare(`SELECT j.idx, a.attempt, a.out_dir FROM experiment_jobs j
      JOIN attempts a ON a.experiment = j.experiment AND a.job = j.idx AND a.attempt = j.attempts
      WHERE j.experiment = ? AND j.state IN ('succeeded', 'failed') AND j.idx > ? ORDER BY j.idx LIMIT ?`)
    .all(experiment, after, jobs) as { idx: number; attempt: number; out_dir: string }[];
  const images: GalleryImage[] = [];
  let last = after;
  let scanned = 0;
  let full = false;
  for (const r of rows) {
    const found = imagesIn(r.out_dir, { perJob, filesPerJob });
    if (images.length + found.length > maxImages) {
      full = true;
      break;
    }
    images.push(...found.map((f) => ({ job: r.idx, attempt: r.attempt, ...f })));
    last = r.idx;
    scanned++;
  }
  return { images, finishedJobs, scannedJobs: scanned, next: full || rows.length === jobs ? last : null };
}
