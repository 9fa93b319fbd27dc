/**
 * How big `mkfs.erofs` will make a dataset's image, known before it runs so that
 * `vmwu data add` can refuse a disk too small instead of filling it (src/data/add.ts).
 * An estimate from the files' sizes, meant to be at or a little above the image.
 */

export const EROFS_BLOCK = 4096;

/** What the estimate needs to know of a tree, from one walk of it (lstat only, nothing read). */
export interface TreeStats {
  /** Regular files, and the sum of their sizes. */
  files: number;
  bytes: number;
  /** Sum over files of their size in 4 KiB blocks, and of the blocks they have on disk (no more than the former each). */
  blocks: number;
  allocatedBlocks: number;
  /** The plain layout: whole blocks, and the tails (what is left after them) that go into the metadata, next to their inodes. */
  fullBlocks: number;
  tailBytes: number;
  /** Some file has at least one unallocated block: a hole. */
  holes: boolean;
  /** Every entry (files, directories, symbolic links), directories alone, and the bytes of names and link targets. */
  entries: number;
  dirs: number;
  nameBytes: number;
}

export function emptyTreeStats(): TreeStats {
  return { files: 0, bytes: 0, blocks: 0, allocatedBlocks: 0, fullBlocks: 0, tailBytes: 0, holes: false, entries: 0, dirs: 0, nameBytes: 0 };
}

const blocksOf = (n: number) => Math.ceil(n / EROFS_BLOCK);

/** Adds one regular file: `allocated` is what it takes on disk (st_blocks × 512). */
export function addFile(t: TreeStats, size: number, allocated: number): void {
  t.files++;
  t.bytes += size;
  t.blocks += blocksOf(size);
  t.allocatedBlocks += Math.min(blocksOf(allocated), blocksOf(size));
  // mkfs.erofs puts a tail in the inode's metadata block when both fit in one block; else the tail takes a block.
  const tail = size % EROFS_BLOCK;
  if (tail > EROFS_BLOCK - INODE) t.fullBlocks += blocksOf(size);
  else {
    t.fullBlocks += Math.floor(size / EROFS_BLOCK);
    t.tailBytes += tail;
  }
  // A whole block missing, not a small file kept in its inode (ext4 inline data: 0 blocks for 60 bytes).
  if (size - allocated >= EROFS_BLOCK) t.holes = true;
}

// Superblock, root, and slack for mkfs's own rounding.
const FIXED = 64 * 1024;
// An extended inode; per entry, that and a directory entry (12 bytes) plus up to a 32-byte slot of padding.
const INODE = 64;
const PER_ENTRY = INODE + 12 + 32;
// erofs-utils 1.5 writes a 4-byte block address per chunk (the 8-byte index is for extra devices).
const CHUNK_INDEX_ENTRY = 4;

/**
 * About how big the image is. A chunk-based one (4 KiB chunks) stores an all-zero
 * chunk as a hole, so it takes about what the files take on disk plus 4 bytes per
 * chunk of index; the plain layout writes every block of every file.
 */
export function erofsImageBytes(t: TreeStats, chunked: boolean): number {
  // Chunk-based files keep no tails inline: each chunk is a block.
  const data = chunked ? t.allocatedBlocks * EROFS_BLOCK : t.fullBlocks * EROFS_BLOCK + t.tailBytes;
  const index = chunked ? t.blocks * CHUNK_INDEX_ENTRY : 0;
  // Each directory's entries in blocks of their own; names and short link targets inline.
  const meta = FIXED + t.entries * PER_ENTRY + t.nameBytes + t.dirs * EROFS_BLOCK;
  return blocksOf(data + index + meta) * EROFS_BLOCK;
}
