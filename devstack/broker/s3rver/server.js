#!/usr/bin/env node
// The local stack's object store: s3rver (objects as files under --directory), made safe for Tansu.
//
// Tansu's S3 storage keeps its metadata (clusters/<id>/meta.json, each partition's watermark.json)
// as objects it updates by optimistic concurrency: PUT with If-Match: <etag> (update) or
// If-None-Match: * (create), and on 412 it re-reads and retries. s3rver 3.7.1 ignores both
// headers and writes objects in place, so two writers would silently overwrite each other and a
// kill -9 during a write would leave a torn meta.json. This launcher adds, without patching s3rver:
//
//   * conditional PUTs: If-Match / If-None-Match are checked against the stored ETag and answered
//     412 PreconditionFailed on mismatch; writes (and deletes) of one key are serialised, so the
//     check and the write are atomic with respect to each other;
//   * listings longer than one page: s3rver encrypts its ListObjectsV2 continuation tokens with DES,
//     which OpenSSL 3 (Node 17+) no longer offers, so every truncated listing failed with 500 and
//     Tansu's fetch (it lists a partition's batches) failed once a partition held 1,000 batches;
//     the tokens are now the same bytes unencrypted (they only need to round-trip);
//   * listings in linear time: s3rver walks (and stats) the whole bucket for every page of 1,000 keys,
//     ~1.2 s for the first page of a partition of 30,000 batches and ~59 s for all of it, and Tansu
//     lists a partition's batches on every fetch; listings are now read from the one directory that
//     holds the prefix (s3rver's own listing stays for delimiters other than '/');
//   * kept times: a PUT with x-amz-meta-eventpulse-mtime-ms keeps that Last-Modified (compaction);
//   * merges in one step: a PUT with x-amz-meta-eventpulse-replaces-through: NAME also removes the
//     objects of its directory whose names sort after its own, up to NAME, in the same tick as its
//     rename (compaction's merged batch and the batches it holds), so no listing or GET ever sees both
//     the merged batch and one of its parts (Tansu's fetch returned both: records read twice);
//   * atomic writes: an object is written to a temporary file and renamed into place, and the
//     response is sent only once the bytes are written (s3rver answers before its write stream
//     has finished, so a GET right after a PUT could read a partial object).
//
// Writes are not fsync'ed: they survive a kill -9 of this process or of the broker (the page cache
// belongs to the kernel), not a power cut, like Kafka's default (flush left to the OS).
//
// Usage: node server.js --address 127.0.0.1 --port 9000 --directory DIR [--bucket tansu ...] [--verbose]
'use strict';

const crypto = require('crypto');
const fs = require('fs/promises');
const fsSync = require('fs');
const path = require('path');

// s3rver's continuation tokens: `des` is gone from OpenSSL 3; an identity "cipher" round-trips them.
const { createCipheriv, createDecipheriv } = crypto;
const identity = () => ({
  update: (data, encoding) => (Buffer.isBuffer(data) ? data : Buffer.from(data, encoding)),
  final: () => Buffer.alloc(0),
});
crypto.createCipheriv = (algorithm, ...rest) => (algorithm === 'des' ? identity() : createCipheriv(algorithm, ...rest));
crypto.createDecipheriv = (algorithm, ...rest) =>
  algorithm === 'des' ? identity() : createDecipheriv(algorithm, ...rest);

const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

function parseArgs(argv) {
  const options = { address: '127.0.0.1', port: 9000, directory: null, buckets: [], silent: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--address') options.address = value();
    else if (arg === '--port') options.port = Number(value());
    else if (arg === '--directory') options.directory = value();
    else if (arg === '--bucket') options.buckets.push(value());
    else if (arg === '--verbose') options.silent = false;
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!options.directory) throw new Error('--directory is required');
  return options;
}

let tmpCounter = 0;

// `alsoNow` (synchronous) runs right after the rename, before any other request is served.
async function writeAtomically(file, data, mtimeMs, alsoNow) {
  const tmp = `${file}.tmp-${process.pid}-${++tmpCounter}`;
  await fs.writeFile(tmp, data);
  if (mtimeMs !== undefined) await fs.utimes(tmp, mtimeMs / 1000, mtimeMs / 1000);
  if (!alsoNow) return fs.rename(tmp, file);
  fsSync.renameSync(tmp, file);
  alsoNow();
}

// A PUT may keep an object's time (its Last-Modified): the broker's compactor rewrites batches under
// their old time, since Tansu finds a partition's first and last batch by Last-Modified.
const MTIME_HEADER = 'x-amz-meta-eventpulse-mtime-ms';
// A PUT may replace a run of objects after it in its directory (compaction's merge): see dropReplaced.
const REPLACES_HEADER = 'x-amz-meta-eventpulse-replaces-through';

// Synchronously (one tick, so no request sees half of it): remove the objects of key's directory whose
// names sort after key's own, up to `through` (a name in that directory), from disk and from the index.
function dropReplaced(store, bucket, key, through) {
  const [dirKey, name] = parentOf(key);
  const dir = directories(bucket).get(dirKey);
  for (const file of fsSync.readdirSync(path.join(store.getBucketPath(bucket), dirKey))) {
    if (!file.endsWith(OBJECT_SUFFIX)) continue;
    const child = file.slice(0, -OBJECT_SUFFIX.length);
    if (child <= name || child > through) continue;
    for (const kind of ['object', 'object.md5', 'metadata.json']) {
      fsSync.rmSync(store.getResourcePath(bucket, dirKey + child, kind), { force: true });
    }
    metadataCache.delete(`${bucket}/${dirKey}${child}`);
    if (dir && dir.children.delete(child)) dir.sorted = null;
  }
}

// Replaces FilesystemStore.putObject: whole body first, then temporary files renamed into place.
// The .md5 file (the ETag) is removed before the object is replaced and written after it, so a
// crash in between leaves no stale ETag: s3rver recomputes a missing .md5 from the object.
async function putObjectAtomically(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  const md5Path = this.getResourcePath(object.bucket, object.key, 'object.md5');
  const metadataPath = this.getResourcePath(object.bucket, object.key, 'metadata.json');
  await fs.mkdir(path.dirname(objectPath), { recursive: true });
  let content = object.content;
  if (!Buffer.isBuffer(content)) {
    const chunks = [];
    for await (const chunk of content) chunks.push(chunk);
    content = Buffer.concat(chunks);
  }
  const md5 = crypto.createHash('md5').update(content).digest('hex');
  const metadata = {};
  for (const [key, value] of Object.entries(object.metadata)) {
    if (key === REPLACES_HEADER) continue;
    if (key.startsWith('x-amz-meta-') || ALLOWED_METADATA.has(key)) metadata[key] = value;
  }
  const through = object.metadata[REPLACES_HEADER];
  const alsoNow = through ? () => dropReplaced(this, object.bucket, object.key, path.posix.basename(through)) : undefined;
  await writeAtomically(metadataPath, JSON.stringify(metadata, null, 2));
  await fs.rm(md5Path, { force: true });
  const mtime = Number(object.metadata[MTIME_HEADER]);
  await writeAtomically(objectPath, content, Number.isFinite(mtime) && mtime > 0 ? mtime : undefined, alsoNow);
  await writeAtomically(md5Path, md5);
  return { size: content.length, md5 };
}

const OBJECT_SUFFIX = '._S3rver_object';
const S3Object = require('s3rver/lib/models/object');

// The listing index: per bucket and directory ('' or 'a/b/'), its objects and subdirectories, kept
// up to date by the store's own write paths (hooked below), and each object's listing metadata
// (size, time, ETag). Record batches are written once and never change, so a listing is served
// from memory; a directory is read from disk the first time it is listed.
const index = new Map(); // bucket -> Map(dirKey -> { children: Map(name -> isDirectory), sorted })
const metadataCache = new Map(); // `${bucket}/${key}` -> metadata

function directories(bucket) {
  if (!index.has(bucket)) index.set(bucket, new Map());
  return index.get(bucket);
}

async function directory(store, bucket, dirKey) {
  const dirs = directories(bucket);
  if (dirs.has(dirKey)) return dirs.get(dirKey);
  const children = new Map();
  try {
    for (const entry of await fs.readdir(path.join(store.getBucketPath(bucket), dirKey), { withFileTypes: true })) {
      if (entry.isDirectory()) children.set(entry.name, true);
      else if (entry.name.endsWith(OBJECT_SUFFIX)) children.set(entry.name.slice(0, -OBJECT_SUFFIX.length), false);
    }
  } catch (err) {
    if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') throw err;
  }
  const dir = { children, sorted: null };
  dirs.set(dirKey, dir);
  return dir;
}

function sortedKeys(dirKey, dir) {
  if (!dir.sorted) {
    dir.sorted = [...dir.children].map(([name, isDir]) => [dirKey + name + (isDir ? '/' : ''), isDir]);
    dir.sorted.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
  return dir.sorted;
}

// [key or common prefix, isDirectory] under dirKey, sorted; recursive listings expand subdirectories.
async function keysUnder(store, bucket, dirKey, recurse) {
  const entries = sortedKeys(dirKey, await directory(store, bucket, dirKey));
  if (!recurse || !entries.some(([, isDir]) => isDir)) return entries;
  const found = [];
  for (const [key, isDir] of entries) {
    if (isDir) found.push(...(await keysUnder(store, bucket, key, true)));
    else found.push([key, false]);
  }
  return found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function parentOf(key) {
  const slash = key.lastIndexOf('/', key.endsWith('/') ? key.length - 2 : key.length);
  return [key.slice(0, slash + 1), key.slice(slash + 1).replace(/\/$/, '')];
}

// After a write of bucket/key: the object and every directory above it exist.
function noteWritten(bucket, key) {
  metadataCache.delete(`${bucket}/${key}`);
  const dirs = directories(bucket);
  let [dirKey, name] = parentOf(key);
  let isDir = false;
  for (;;) {
    const dir = dirs.get(dirKey);
    if (dir && dir.children.get(name) !== isDir) {
      dir.children.set(name, isDir);
      dir.sorted = null;
    }
    if (!dirKey) return;
    [dirKey, name] = parentOf(dirKey);
    isDir = true;
  }
}

// After a delete of bucket/key: s3rver removes the directories it left empty; forget them too.
async function noteDeleted(store, bucket, key) {
  metadataCache.delete(`${bucket}/${key}`);
  const dirs = directories(bucket);
  let [dirKey, name] = parentOf(key);
  for (;;) {
    const dir = dirs.get(dirKey);
    if (dir && dir.children.delete(name)) dir.sorted = null;
    if (!dirKey) return;
    const gone = await fs.access(path.join(store.getBucketPath(bucket), dirKey)).then(
      () => false,
      () => true,
    );
    if (!gone) return;
    dirs.delete(dirKey);
    [dirKey, name] = parentOf(dirKey);
  }
}

async function listingMetadata(store, bucket, key) {
  const id = `${bucket}/${key}`;
  if (!metadataCache.has(id)) {
    try {
      metadataCache.set(id, await store.getMetadata(bucket, key));
    } catch (err) {
      if (err.code === 'ENOENT') return undefined; // deleted meanwhile
      throw err;
    }
  }
  return metadataCache.get(id);
}

async function listObjectsFast(bucket, options) {
  const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
  if (delimiter && delimiter !== '/') return originalListObjects.call(this, bucket, options);
  const dirKey = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  const keys = [];
  const commonPrefixes = [];
  let isTruncated = false;
  for (const [key, isDirectory] of await keysUnder(this, bucket, dirKey, !delimiter)) {
    if (!key.startsWith(prefix) || key <= startAfter) continue;
    if (isDirectory) {
      commonPrefixes.push(key);
      continue;
    }
    if (keys.length >= maxKeys) {
      isTruncated = true;
      break;
    }
    keys.push(key);
  }
  const metadata = await Promise.all(keys.map(key => listingMetadata(this, bucket, key)));
  return {
    objects: keys
      .map((key, i) => [key, metadata[i]])
      .filter(([, meta]) => meta !== undefined)
      .map(([key, meta]) => new S3Object(bucket, key, null, meta)),
    commonPrefixes: isTruncated ? commonPrefixes.filter(p => p < keys[keys.length - 1]) : commonPrefixes,
    isTruncated,
  };
}

function hookIndex(proto) {
  const { putObject, copyObject, deleteObject, putObjectMultipart, putBucket, deleteBucket } = proto;
  proto.putObject = async function (object) {
    const result = await putObject.call(this, object);
    noteWritten(object.bucket, object.key);
    return result;
  };
  proto.copyObject = async function (srcBucket, srcKey, destBucket, destKey, ...rest) {
    const result = await copyObject.call(this, srcBucket, srcKey, destBucket, destKey, ...rest);
    noteWritten(destBucket, destKey);
    return result;
  };
  proto.putObjectMultipart = async function (bucket, uploadId, parts) {
    const result = await putObjectMultipart.call(this, bucket, uploadId, parts);
    index.delete(bucket); // rare: the key is in the upload's metadata, start this bucket over
    for (const id of metadataCache.keys()) if (id.startsWith(`${bucket}/`)) metadataCache.delete(id);
    return result;
  };
  proto.deleteObject = async function (bucket, key) {
    const result = await deleteObject.call(this, bucket, key);
    await noteDeleted(this, bucket, key);
    return result;
  };
  for (const [name, original] of [
    ['putBucket', putBucket],
    ['deleteBucket', deleteBucket],
  ]) {
    proto[name] = async function (bucket, ...rest) {
      const result = await original.call(this, bucket, ...rest);
      index.delete(bucket);
      for (const id of metadataCache.keys()) if (id.startsWith(`${bucket}/`)) metadataCache.delete(id);
      return result;
    };
  }
}

const originalListObjects = FilesystemStore.prototype.listObjects;

const ALLOWED_METADATA = new Set(S3Object.ALLOWED_METADATA);

const unquote = tag => tag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');

// The ETag of bucket/key as stored, or null when there is no such object.
async function currentETag(store, bucket, key) {
  try {
    const metadata = await store.getMetadata(bucket, key);
    return unquote(metadata.etag);
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
}

// True when a PUT with these headers may replace the current object (etag null: none exists).
function preconditionHolds(headers, etag) {
  const ifMatch = headers['if-match'];
  const ifNoneMatch = headers['if-none-match'];
  if (ifMatch !== undefined) {
    if (etag === null) return false;
    if (ifMatch.trim() !== '*' && !ifMatch.split(',').map(unquote).includes(etag)) return false;
  }
  if (ifNoneMatch !== undefined && etag !== null) {
    if (ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').map(unquote).includes(etag)) return false;
  }
  return true;
}

// One queue per key: every write or delete of a key waits for the previous one to be answered.
const queues = new Map();

async function serialised(key, work) {
  const previous = queues.get(key) || Promise.resolve();
  let release;
  const mine = new Promise(resolve => (release = resolve));
  const tail = previous.then(() => mine);
  queues.set(key, tail);
  await previous;
  try {
    return await work();
  } finally {
    release();
    if (queues.get(key) === tail) queues.delete(key);
  }
}

function objectTarget(ctx) {
  // Path-style requests only (the broker and boto3 are configured so): /bucket/key...
  const match = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
  if (!match || Object.keys(ctx.query).some(q => ['uploads', 'uploadId', 'tagging', 'acl'].includes(q))) {
    return null;
  }
  return { bucket: match[1], key: decodeURIComponent(match[2]) };
}

function conditionalWrites(store) {
  return async (ctx, next) => {
    const isWrite = ctx.method === 'PUT' || ctx.method === 'DELETE';
    const target = isWrite ? objectTarget(ctx) : null;
    if (!target) return next();
    return serialised(`${target.bucket}/${target.key}`, async () => {
      const conditional = ctx.headers['if-match'] !== undefined || ctx.headers['if-none-match'] !== undefined;
      if (ctx.method === 'PUT' && conditional) {
        const etag = await currentETag(store, target.bucket, target.key);
        if (!preconditionHolds(ctx.headers, etag)) {
          ctx.req.resume(); // drain the body we will not store
          ctx.status = 412;
          ctx.type = 'application/xml';
          ctx.body =
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
            '<Message>At least one of the pre-conditions you specified did not hold</Message>' +
            `<Condition>${ctx.headers['if-match'] !== undefined ? 'If-Match' : 'If-None-Match'}</Condition></Error>`;
          return;
        }
      }
      await next();
    });
  };
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  await fs.mkdir(options.directory, { recursive: true });
  FilesystemStore.prototype.putObject = putObjectAtomically;
  FilesystemStore.prototype.listObjects = listObjectsFast;
  hookIndex(FilesystemStore.prototype);
  const server = new S3rver({
    address: options.address,
    port: options.port,
    directory: options.directory,
    silent: options.silent,
    configureBuckets: options.buckets.map(name => ({ name })),
  });
  // After s3rver's logger and XML encoder, before its router.
  server.middleware.splice(2, 0, conditionalWrites(server.store));
  const { address, port } = await server.run();
  console.log(`object store ready on http://${address}:${port} (directory ${options.directory})`);
  // Exit at once: every write is a rename, so there is no half-written object to wait for, and
  // closing the server would wait for the broker's keep-alive connections.
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  console.error(`object store failed: ${err.message}`);
  process.exit(1);
});
