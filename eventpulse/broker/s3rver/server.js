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
const path = require('path');
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

async function writeAtomically(file, data) {
  const tmp = `${file}.tmp-${process.pid}-${++tmpCounter}`;
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, file);
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
    if (key.startsWith('x-amz-meta-') || ALLOWED_METADATA.has(key)) metadata[key] = value;
  }
  await writeAtomically(metadataPath, JSON.stringify(metadata, null, 2));
  await fs.rm(md5Path, { force: true });
  await writeAtomically(objectPath, content);
  await writeAtomically(md5Path, md5);
  return { size: content.length, md5 };
}

const ALLOWED_METADATA = new Set(require('s3rver/lib/models/object').ALLOWED_METADATA);

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
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  console.error(`object store failed: ${err.message}`);
  process.exit(1);
});
